// Stand-in for curator-test's TestingZooKeeperServer, used by tests/clients/curator_suite.sh.
// Written for this project (not Curator's code). Put first on the classpath, it replaces the
// embedded in-process ZooKeeper of curator-test with an external server process:
//   -Dcurator.suite.target=java  Apache ZooKeeper's QuorumPeerMain (Debian's jars) in its own JVM
//   -Dcurator.suite.target=zkrs  `<zkrs> start-foreground <zoo.cfg>`
// Curator's TestingServer / TestingCluster / QuorumConfigBuilder (Debian's curator-test jar) are
// used unchanged; the zoo.cfg is QuorumConfigBuilder.buildConfigProperties(index) plus
// 4lw.commands.whitelist=*, admin.enableServer=false and maxClientCnxns=0 (when not given), and
// the zookeeper.* / znode.* system properties the tests set in this JVM (as -D for Java, as
// zoo.cfg keys with the "zookeeper." prefix dropped for zkrs).
package org.apache.curator.test;

import java.io.Closeable;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.BindException;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

public class TestingZooKeeperServer implements Closeable
{
    private static final String TARGET = System.getProperty("curator.suite.target", "java");
    private static final String ZKRS_BIN = System.getProperty("curator.suite.zkrsBin", "zkrs");
    private static final String JAVA_CP = System.getProperty("curator.suite.javaServerCp",
        "/usr/share/java/zookeeper.jar:/usr/share/java/zookeeper-jute.jar:/usr/share/java/slf4j-simple.jar:"
            + "/usr/share/java/netty-codec.jar:/usr/share/java/netty-resolver.jar");
    private static final String JAVA_BIN = System.getProperty("curator.suite.javaBin",
        System.getProperty("java.home") + "/bin/java");
    private static final File LOG_DIR = new File(System.getProperty("curator.suite.logDir",
        System.getProperty("java.io.tmpdir")));
    private static final AtomicInteger SEQ = new AtomicInteger();
    private static final Set<Process> LIVE = ConcurrentHashMap.newKeySet();

    static
    {
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            for ( Process p : LIVE )
            {
                p.destroyForcibly();
            }
        }));
    }

    private enum State
    {
        LATENT, STARTED, STOPPED, CLOSED
    }

    private final QuorumConfigBuilder configBuilder;
    private final int thisInstanceIndex;
    private volatile State state = State.LATENT;
    private volatile Process process;

    public TestingZooKeeperServer(QuorumConfigBuilder configBuilder)
    {
        this(configBuilder, 0);
    }

    public TestingZooKeeperServer(QuorumConfigBuilder configBuilder, int thisInstanceIndex)
    {
        this.configBuilder = configBuilder;
        this.thisInstanceIndex = thisInstanceIndex;
    }

    // curator-test's package-private accessor; there is no in-process server here
    ZooKeeperMainFace getMain()
    {
        return null;
    }

    public Collection<InstanceSpec> getInstanceSpecs()
    {
        return configBuilder.getInstanceSpecs();
    }

    public InstanceSpec getInstanceSpec()
    {
        return configBuilder.getInstanceSpec(thisInstanceIndex);
    }

    private boolean isCluster()
    {
        return configBuilder.size() > 1;
    }

    public synchronized void start() throws Exception
    {
        if ( state != State.LATENT )
        {
            return;
        }
        state = State.STARTED;
        InstanceSpec spec = getInstanceSpec();
        spec.getDataDirectory().mkdirs();
        Properties props = configBuilder.buildConfigProperties(thisInstanceIndex);
        props.setProperty("4lw.commands.whitelist", "*");
        props.setProperty("admin.enableServer", "false");
        if ( !props.containsKey("maxClientCnxns") )
        {
            props.setProperty("maxClientCnxns", "0");
        }
        Map<String, String> sysProps = new TreeMap<>();
        for ( String name : System.getProperties().stringPropertyNames() )
        {
            if ( (name.startsWith("zookeeper.") || name.startsWith("znode."))
                && !name.equals("zookeeper.serverCnxnFactory") && !name.equals("zookeeper.jmx.log4j.disable") )
            {
                sysProps.put(name, System.getProperty(name));
            }
        }
        List<String> cmd = new ArrayList<>();
        File cfg = new File(spec.getDataDirectory().getParentFile(),
            "zoo-" + spec.getPort() + "-" + SEQ.incrementAndGet() + ".cfg");
        if ( TARGET.equals("zkrs") )
        {
            for ( Map.Entry<String, String> e : sysProps.entrySet() )
            {
                String k = e.getKey().startsWith("zookeeper.") ? e.getKey().substring("zookeeper.".length()) : e.getKey();
                props.setProperty(k, e.getValue());
            }
            cmd.add(ZKRS_BIN);
            cmd.add("start-foreground");
            cmd.add(cfg.getPath());
        }
        else
        {
            cmd.add(JAVA_BIN);
            cmd.add("-Xmx256m");
            cmd.add("-XX:+UseSerialGC");
            cmd.add("-XX:TieredStopAtLevel=1");
            cmd.add("-Dzookeeper.jmx.log4j.disable=true");
            for ( Map.Entry<String, String> e : sysProps.entrySet() )
            {
                cmd.add("-D" + e.getKey() + "=" + e.getValue());
            }
            cmd.add("-cp");
            cmd.add(JAVA_CP);
            cmd.add("org.apache.zookeeper.server.quorum.QuorumPeerMain");
            cmd.add(cfg.getPath());
        }
        StringBuilder text = new StringBuilder();
        for ( String k : new TreeMap<>(toMap(props)).keySet() )
        {
            text.append(k).append('=').append(props.getProperty(k)).append('\n');
        }
        Files.write(cfg.toPath(), text.toString().getBytes(StandardCharsets.UTF_8));
        LOG_DIR.mkdirs();
        File log = new File(LOG_DIR, "server-" + TARGET + "-" + spec.getPort() + "-" + SEQ.incrementAndGet() + ".log");
        Files.write(log.toPath(), ("== " + String.join(" ", cmd) + "\n" + text).getBytes(StandardCharsets.UTF_8));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true)
            .redirectOutput(ProcessBuilder.Redirect.appendTo(log));
        pb.environment().putIfAbsent("RUST_LOG", "info");
        process = pb.start();
        LIVE.add(process);
        waitUp(spec, log);
    }

    private static Map<String, String> toMap(Properties p)
    {
        Map<String, String> m = new TreeMap<>();
        for ( String k : p.stringPropertyNames() )
        {
            m.put(k, p.getProperty(k));
        }
        return m;
    }

    // standalone: until `srvr` reports a mode; ensemble member: until the client port accepts
    // (its peers are started one after the other, so no quorum yet)
    private void waitUp(InstanceSpec spec, File log) throws Exception
    {
        long deadline = System.currentTimeMillis() + 60_000;
        while ( System.currentTimeMillis() < deadline )
        {
            Process p = process;
            if ( p == null || !p.isAlive() )
            {
                LIVE.remove(p);
                state = State.STOPPED;
                String out = new String(Files.readAllBytes(log.toPath()), StandardCharsets.UTF_8);
                if ( out.contains("Address already in use") || out.contains("AddrInUse") || out.contains("address already in use") )
                {
                    throw new BindException("server on port " + spec.getPort() + " could not bind (see " + log + ")");
                }
                throw new FailedServerStartException("server on port " + spec.getPort() + " exited (see " + log + ")");
            }
            if ( isCluster() )
            {
                if ( canConnect(spec.getPort()) )
                {
                    return;
                }
            }
            else
            {
                String srvr = fourLetter(spec.getPort(), "srvr");
                if ( srvr != null && srvr.contains("Mode: ") )
                {
                    return;
                }
            }
            Thread.sleep(50);
        }
        if ( !isCluster() )
        {
            throw new FailedServerStartException("server on port " + spec.getPort() + " not up in 60s (see " + log + ")");
        }
    }

    private static boolean canConnect(int port)
    {
        try ( Socket s = new Socket() )
        {
            s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
            return true;
        }
        catch ( IOException e )
        {
            return false;
        }
    }

    static String fourLetter(int port, String cmd)
    {
        try ( Socket s = new Socket() )
        {
            s.connect(new InetSocketAddress("127.0.0.1", port), 1000);
            s.setSoTimeout(3000);
            OutputStream out = s.getOutputStream();
            out.write(cmd.getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = s.getInputStream();
            byte[] buf = in.readAllBytes();
            return new String(buf, StandardCharsets.UTF_8);
        }
        catch ( IOException e )
        {
            return null;
        }
    }

    private void halt(boolean force)
    {
        Process p = process;
        process = null;
        if ( p == null )
        {
            return;
        }
        if ( force )
        {
            p.destroyForcibly();
        }
        else
        {
            p.destroy();
        }
        try
        {
            if ( !p.waitFor(15, TimeUnit.SECONDS) )
            {
                p.destroyForcibly();
                p.waitFor(15, TimeUnit.SECONDS);
            }
        }
        catch ( InterruptedException e )
        {
            Thread.currentThread().interrupt();
            p.destroyForcibly();
        }
        LIVE.remove(p);
    }

    public synchronized void kill()
    {
        halt(true);
        state = State.STOPPED;
    }

    public synchronized void restart() throws Exception
    {
        if ( state == State.CLOSED )
        {
            throw new IllegalStateException("Cannot restart a closed instance");
        }
        if ( state == State.STARTED )
        {
            stop();
        }
        state = State.LATENT;
        start();
    }

    public synchronized void stop() throws IOException
    {
        if ( state == State.STARTED )
        {
            state = State.STOPPED;
            halt(false);
        }
    }

    @Override
    public synchronized void close() throws IOException
    {
        stop();
        if ( state == State.STOPPED || state == State.LATENT )
        {
            state = State.CLOSED;
            configBuilder.close();
            InstanceSpec spec = getInstanceSpec();
            if ( spec.deleteDataDirectoryOnClose() )
            {
                DirectoryUtils.deleteRecursively(spec.getDataDirectory());
            }
        }
    }
}
