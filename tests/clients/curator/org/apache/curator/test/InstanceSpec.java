// Stand-in for curator-test's InstanceSpec, used by tests/clients/curator_suite.sh.
// Written for this project (not Curator's code); same public API. Differences: "random" ports
// come, in turn, from 127.0.0.1 ports curator.suite.portBase .. +curator.suite.portCount-1
// (default 22200..22299) that can be bound at the time, and the host is always 127.0.0.1.
package org.apache.curator.test;

import java.io.File;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.util.Collections;
import java.util.Map;
import java.util.concurrent.atomic.AtomicInteger;

public class InstanceSpec
{
    private static final AtomicInteger nextServerId = new AtomicInteger(1);
    private static final String LOCALHOST = "127.0.0.1";
    private static final int PORT_BASE = Integer.getInteger("curator.suite.portBase", 22200);
    private static final int PORT_COUNT = Integer.getInteger("curator.suite.portCount", 100);
    // start where the previous test JVM of the run left off (ports of a stopped server are
    // then not handed out again at once)
    private static final AtomicInteger nextPort = new AtomicInteger(Integer.getInteger("curator.suite.portStart", 0));

    private final File dataDirectory;
    private final int port;
    private final int electionPort;
    private final int quorumPort;
    private final boolean deleteDataDirectoryOnClose;
    private final int serverId;
    private final int tickTime;
    private final int maxClientCnxns;
    private final Map<String, Object> customProperties;
    private final String hostname;

    public static void reset()
    {
        nextServerId.set(1);
    }

    public static InstanceSpec newInstanceSpec()
    {
        return new InstanceSpec(null, -1, -1, -1, true, -1, -1, -1);
    }

    public static synchronized int getRandomPort()
    {
        for ( int i = 0; i < PORT_COUNT; ++i )
        {
            int port = PORT_BASE + Math.floorMod(nextPort.getAndIncrement(), PORT_COUNT);
            try ( ServerSocket s = new ServerSocket() )
            {
                s.setReuseAddress(true);
                s.bind(new InetSocketAddress(InetAddress.getByName(LOCALHOST), port));
                return port;
            }
            catch ( IOException ignore )
            {
                // in use: next one
            }
        }
        throw new Error("no free port in " + PORT_BASE + ".." + (PORT_BASE + PORT_COUNT - 1));
    }

    public InstanceSpec(File dataDirectory, int port, int electionPort, int quorumPort, boolean deleteDataDirectoryOnClose, int serverId)
    {
        this(dataDirectory, port, electionPort, quorumPort, deleteDataDirectoryOnClose, serverId, -1, -1, null, null);
    }

    public InstanceSpec(File dataDirectory, int port, int electionPort, int quorumPort, boolean deleteDataDirectoryOnClose, int serverId, int tickTime, int maxClientCnxns)
    {
        this(dataDirectory, port, electionPort, quorumPort, deleteDataDirectoryOnClose, serverId, tickTime, maxClientCnxns, null, null);
    }

    public InstanceSpec(File dataDirectory, int port, int electionPort, int quorumPort, boolean deleteDataDirectoryOnClose, int serverId, int tickTime, int maxClientCnxns, Map<String, Object> customProperties)
    {
        this(dataDirectory, port, electionPort, quorumPort, deleteDataDirectoryOnClose, serverId, tickTime, maxClientCnxns, customProperties, null);
    }

    public InstanceSpec(File dataDirectory, int port, int electionPort, int quorumPort, boolean deleteDataDirectoryOnClose, int serverId, int tickTime, int maxClientCnxns, Map<String, Object> customProperties, String hostname)
    {
        this.dataDirectory = (dataDirectory != null) ? dataDirectory : DirectoryUtils.createTempDirectory();
        this.port = (port >= 0) ? port : getRandomPort();
        this.electionPort = (electionPort >= 0) ? electionPort : getRandomPort();
        this.quorumPort = (quorumPort >= 0) ? quorumPort : getRandomPort();
        this.deleteDataDirectoryOnClose = deleteDataDirectoryOnClose;
        this.serverId = (serverId >= 0) ? serverId : nextServerId.getAndIncrement();
        this.tickTime = (tickTime > 0) ? tickTime : -1;
        this.maxClientCnxns = (maxClientCnxns >= 0) ? maxClientCnxns : -1;
        this.customProperties = (customProperties != null) ? Collections.unmodifiableMap(customProperties) : Collections.emptyMap();
        this.hostname = (hostname == null) ? LOCALHOST : hostname;
    }

    public int getServerId()
    {
        return serverId;
    }

    public File getDataDirectory()
    {
        return dataDirectory;
    }

    public int getPort()
    {
        return port;
    }

    public int getElectionPort()
    {
        return electionPort;
    }

    public int getQuorumPort()
    {
        return quorumPort;
    }

    public String getConnectString()
    {
        return hostname + ":" + port;
    }

    public int getTickTime()
    {
        return tickTime;
    }

    public int getMaxClientCnxns()
    {
        return maxClientCnxns;
    }

    public boolean deleteDataDirectoryOnClose()
    {
        return deleteDataDirectoryOnClose;
    }

    public Map<String, Object> getCustomProperties()
    {
        return customProperties;
    }

    public String getHostname()
    {
        return hostname;
    }

    @Override
    public String toString()
    {
        return "InstanceSpec{dataDirectory=" + dataDirectory + ", port=" + port + ", electionPort=" + electionPort
            + ", quorumPort=" + quorumPort + ", serverId=" + serverId + ", tickTime=" + tickTime
            + ", maxClientCnxns=" + maxClientCnxns + ", customProperties=" + customProperties + ", hostname=" + hostname + "}";
    }

    @Override
    public boolean equals(Object o)
    {
        if ( this == o )
        {
            return true;
        }
        if ( o == null || getClass() != o.getClass() )
        {
            return false;
        }
        InstanceSpec that = (InstanceSpec)o;
        return hostname.equals(that.hostname) && port == that.port;
    }

    @Override
    public int hashCode()
    {
        return hostname.hashCode() + port;
    }
}
