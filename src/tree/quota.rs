//! Quota usage tracking, as ZooKeeper 3.8's DataTree keeps it, and quota enforcement
//! (`zookeeper.enforceQuota`, off by default): with it on, a create or setData that would
//! take a quota's usage past a hard limit fails with QuotaExceeded.
//!
//! A quota on `/app` is the node `/zookeeper/quota/app/zookeeper_limits`; its usage lives in
//! the data of `/zookeeper/quota/app/zookeeper_stats` as `count=N,bytes=M`. ZooKeeper
//! recomputes that usage when the stats node is created (and when a snapshot is loaded), and
//! then adjusts it on every create, delete and setData under `/app` (the deepest quota root
//! that is `/app` or one of its ancestors). The adjustment rewrites the stats node's data in
//! place: no mzxid, version or watch changes, only its dataLength.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;

use super::node::{walk, Walk};
use super::{path, DataTree};

const QUOTA_ROOT: &str = "/zookeeper/quota";
const LIMIT_NODE: &str = "zookeeper_limits";
const STAT_NODE: &str = "zookeeper_stats";

/// `/zookeeper/quota/app` -> `/app`; None unless strictly under `/zookeeper/quota/`.
fn trim_quota_path(quota_path: &str) -> Option<&str> {
    let rest = quota_path.strip_prefix(QUOTA_ROOT)?;
    if rest.len() > 1 && rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

fn stat_path(root: &str) -> String {
    format!("{QUOTA_ROOT}{root}/{STAT_NODE}")
}

/// ZooKeeper's StatsTrack text: `key=value` pairs separated by runs of `,` or `;`. None when
/// Java would throw (a pair without `=value`, a value that is not a long).
fn parse_stats(data: &[u8]) -> Option<BTreeMap<String, i64>> {
    let text = String::from_utf8_lossy(data);
    let mut stats = BTreeMap::new();
    if text.is_empty() {
        return Some(stats);
    }
    // Java's split("[,;]+") treats a run of separators as one, keeps a leading empty
    // piece and drops trailing ones.
    let pieces = text
        .split([',', ';'])
        .enumerate()
        .filter(|(index, piece)| *index == 0 || !piece.is_empty())
        .map(|(_, piece)| piece);
    for pair in pieces {
        // Java's split("=") drops trailing empty parts; kv[1] must exist.
        let mut parts: Vec<&str> = pair.split('=').collect();
        while parts.len() > 1 && parts.last() == Some(&"") {
            parts.pop();
        }
        let key = parts.first()?;
        let value = parts.get(1)?;
        let value = if value.is_empty() {
            -1
        } else {
            value.parse::<i64>().ok()?
        };
        stats.insert(key.to_string(), value);
    }
    Some(stats)
}

/// StatsTrack.toString: `count=C,bytes=B`, then, if there are other keys, `=` and
/// `;key=value` for each in key order.
fn format_stats(stats: &BTreeMap<String, i64>) -> Bytes {
    let get = |key: &str| stats.get(key).copied().unwrap_or(-1);
    let mut text = format!("count={},bytes={}", get("count"), get("bytes"));
    let mut others = stats
        .iter()
        .filter(|(key, _)| key.as_str() != "count" && key.as_str() != "bytes")
        .peekable();
    if others.peek().is_some() {
        text.push('=');
        for (key, value) in others {
            text.push_str(&format!(";{key}={value}"));
        }
    }
    Bytes::from(text)
}

impl DataTree {
    /// After a node was created: quota bookkeeping for a new limits/stats node, then the
    /// usage of the quota covering `path`.
    pub(super) fn quota_after_create(&mut self, created: &str, data_len: usize) {
        if let Some(parent) = path::parent_of(created) {
            if let Some(root) = trim_quota_path(parent) {
                match path::name_of(created) {
                    LIMIT_NODE => {
                        self.quota_roots.insert(Arc::from(root));
                    }
                    STAT_NODE => {
                        let root = root.to_string();
                        self.recompute_quota_usage(&root);
                    }
                    _ => {}
                }
            }
        }
        self.adjust_quota_usage(created, data_len as i64, 1);
    }

    /// After a node was deleted.
    pub(super) fn quota_after_delete(&mut self, deleted: &str, data_len: usize) {
        if path::name_of(deleted) == LIMIT_NODE {
            if let Some(root) = path::parent_of(deleted).and_then(trim_quota_path) {
                self.quota_roots.remove(root);
            }
        }
        self.adjust_quota_usage(deleted, -(data_len as i64), -1);
    }

    /// After a node's data changed length.
    pub(super) fn quota_after_set_data(&mut self, changed: &str, old_len: usize, new_len: usize) {
        self.adjust_quota_usage(changed, new_len as i64 - old_len as i64, 0);
    }

    /// The deepest quota root that is `path` or one of its ancestors (PathTrie.findMaxPrefix;
    /// `/` never counts).
    fn max_quota_prefix(&self, path: &str) -> Option<Arc<str>> {
        if self.quota_roots.is_empty() {
            return None;
        }
        let mut candidate = path;
        while !candidate.is_empty() && candidate != "/" {
            if let Some(root) = self.quota_roots.get(candidate) {
                return Some(root.clone());
            }
            candidate = path::parent_of(candidate)?;
        }
        None
    }

    /// Whether a quota covers `path` (it or one of its ancestors is a quota root).
    pub(super) fn has_quota_over(&self, path: &str) -> bool {
        self.max_quota_prefix(path).is_some()
    }

    /// ZooKeeperServer.checkQuota (`zookeeper.enforceQuota`): would changing the usage of
    /// the quota covering `path` by `bytes_diff` and `count_diff` pass its hard limits? A
    /// soft limit (`count`, `bytes`) is only logged; a hard one (`countHardLimit`,
    /// `byteHardLimit`, which replace the soft one when set) fails with QuotaExceeded.
    /// Limits or usage that do not parse fail as ZooKeeper's StatsTrack does (an exception
    /// in the request processor: MarshallingError).
    pub(super) fn check_quota(
        &self,
        path: &str,
        bytes_diff: i64,
        count_diff: i64,
    ) -> Result<(), crate::proto::ErrorCode> {
        use crate::proto::ErrorCode;
        let Some(root) = self.max_quota_prefix(path) else {
            return Ok(());
        };
        let limit_path = format!("{QUOTA_ROOT}{root}/{LIMIT_NODE}");
        let Some(limit_node) = self.get(&limit_path) else {
            log::error!("missing quota limit node {limit_path}");
            return Ok(());
        };
        let limits = parse_stats(limit_node.data()).ok_or(ErrorCode::MarshallingError)?;
        let value =
            |stats: &BTreeMap<String, i64>, key: &str| stats.get(key).copied().unwrap_or(-1);
        let check_count = count_diff != 0
            && (value(&limits, "count") > -1 || value(&limits, "countHardLimit") > -1);
        let check_bytes = bytes_diff != 0
            && (value(&limits, "bytes") > -1 || value(&limits, "byteHardLimit") > -1);
        if !check_count && !check_bytes {
            return Ok(());
        }
        let stat_path = stat_path(&root);
        let Some(stat_node) = self.get(&stat_path) else {
            log::error!("missing quota stats node {stat_path}");
            return Ok(());
        };
        let usage = parse_stats(stat_node.data()).ok_or(ErrorCode::MarshallingError)?;
        let checks = [
            (check_count, "count", "countHardLimit", count_diff),
            (check_bytes, "bytes", "byteHardLimit", bytes_diff),
        ];
        for (check, soft_key, hard_key, diff) in checks {
            if !check {
                continue;
            }
            let now = value(&usage, soft_key).wrapping_add(diff);
            let hard = value(&limits, hard_key);
            let limit = if hard > -1 {
                hard
            } else {
                value(&limits, soft_key)
            };
            if now > limit {
                log::debug!(
                    "Quota exceeded: {root} [current {soft_key}={now}, {}{}Limit={limit}]",
                    if hard > -1 { "hard" } else { "soft" },
                    if soft_key == "count" { "Count" } else { "Byte" }
                );
                if hard > -1 {
                    return Err(ErrorCode::QuotaExceeded);
                }
            }
        }
        Ok(())
    }

    /// DataTree.updateQuotaStat.
    fn adjust_quota_usage(&mut self, path: &str, bytes_diff: i64, count_diff: i64) {
        let Some(root) = self.max_quota_prefix(path) else {
            return;
        };
        let stat_path = stat_path(&root);
        let Some(node) = self.get(&stat_path) else {
            log::error!("missing quota stats node {stat_path}");
            return;
        };
        let Some(mut stats) = parse_stats(node.data()) else {
            log::error!(
                "unreadable quota stats in {stat_path}: {:?}",
                bytes::Bytes::copy_from_slice(node.data())
            );
            return;
        };
        let count = stats.get("count").copied().unwrap_or(-1);
        let bytes = stats.get("bytes").copied().unwrap_or(-1);
        stats.insert("count".into(), count.wrapping_add(count_diff));
        stats.insert("bytes".into(), bytes.wrapping_add(bytes_diff));
        let data = format_stats(&stats);
        self.update(&stat_path, |node| node.set_data(&data));
    }

    /// DataTree.updateQuotaForPath: the stats of `root` become the number of nodes and the
    /// data bytes of its subtree (the root node included).
    pub(super) fn recompute_quota_usage(&mut self, root: &str) {
        let mut count: i64 = 0;
        let mut bytes: i64 = 0;
        if let Some(top) = self.get(root) {
            for (_, node) in Walk::new(root, top) {
                count += 1;
                bytes += node.data().len() as i64;
            }
        }
        let stat_path = stat_path(root);
        let mut stats = BTreeMap::new();
        stats.insert("count".to_string(), count);
        stats.insert("bytes".to_string(), bytes);
        let data = format_stats(&stats);
        if self
            .update(&stat_path, |node| node.set_data(&data))
            .is_none()
        {
            log::warn!("missing quota stats node {stat_path}");
        }
    }

    /// DataTree.setupQuota after loading a snapshot: every limits node that is a leaf under
    /// `/zookeeper/quota` makes a quota root, whose usage is recomputed.
    pub(super) fn setup_quotas(&mut self) {
        let Some(quota) = self.get(QUOTA_ROOT) else {
            return;
        };
        let mut roots: Vec<String> = Vec::new();
        walk(QUOTA_ROOT, quota, &mut |path, node| {
            if !node.children.is_empty() {
                return;
            }
            let root = path
                .strip_suffix(&format!("/{LIMIT_NODE}") as &str)
                .and_then(trim_quota_path);
            if let Some(root) = root {
                roots.push(root.to_string());
            }
        });
        for root in roots {
            self.quota_roots.insert(Arc::from(root.as_str()));
            self.recompute_quota_usage(&root);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_text_round_trips_like_stats_track() {
        let stats = parse_stats(b"count=3,bytes=10").unwrap();
        assert_eq!(stats.get("count"), Some(&3));
        assert_eq!(&format_stats(&stats)[..], b"count=3,bytes=10");
        let stats = parse_stats(b"count=1,bytes=5=;countHardLimit=10;byteHardLimit=7").unwrap();
        assert_eq!(
            &format_stats(&stats)[..],
            b"count=1,bytes=5=;byteHardLimit=7;countHardLimit=10"
        );
        assert_eq!(
            parse_stats(b"count==5,bytes=2").unwrap().get("count"),
            Some(&-1)
        );
        assert_eq!(
            parse_stats(b"count=1,,;bytes=2,").unwrap().get("bytes"),
            Some(&2)
        );
        assert!(parse_stats(b"count=,bytes=2").is_none());
        assert!(parse_stats(b",count=1").is_none());
        assert!(parse_stats(b"count").is_none());
        assert!(parse_stats(b"count=x").is_none());
        assert_eq!(&format_stats(&BTreeMap::new())[..], b"count=-1,bytes=-1");
        assert_eq!(trim_quota_path("/zookeeper/quota/a/b"), Some("/a/b"));
        assert_eq!(trim_quota_path("/zookeeper/quota"), None);
        assert_eq!(trim_quota_path("/zookeeper/quotax/a"), None);
    }
}
