//! Four-letter words: gathering the server's state from every shard for the admin module.

use std::rc::Rc;

use crate::net::shard::Shard;

/// Temporary: until the admin module lands.
pub fn parse_four_letter(first4: &[u8]) -> Option<&'static str> {
    match first4 {
        b"ruok" => Some("ruok"),
        b"srvr" => Some("srvr"),
        _ => None,
    }
}

pub fn spawn_admin_inbox(_shard: Rc<Shard>) {}

pub async fn four_letter(shard: &Rc<Shard>, word: &str) -> String {
    match word {
        "ruok" => "imok".to_string(),
        _ => format!(
            "Zookeeper version: 3.8.4-zkrs\nZxid: 0x{:x}\nMode: standalone\nNode count: {}\n",
            shard.tree().last_zxid(),
            shard.tree().node_count()
        ),
    }
}
