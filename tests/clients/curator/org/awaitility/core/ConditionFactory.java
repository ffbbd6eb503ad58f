// Minimal stand-in for org.awaitility.core.ConditionFactory (see ../Awaitility.java).
package org.awaitility.core;

import java.time.Duration;
import java.util.concurrent.Callable;
import java.util.concurrent.TimeUnit;

public class ConditionFactory
{
    private final String alias;
    private Duration atMost = Duration.ofSeconds(10);
    private Duration pollInterval = Duration.ofMillis(100);

    public ConditionFactory(String alias)
    {
        this.alias = alias;
    }

    public ConditionFactory atMost(Duration d)
    {
        atMost = d;
        return this;
    }

    public ConditionFactory atMost(long n, TimeUnit unit)
    {
        return atMost(Duration.ofMillis(unit.toMillis(n)));
    }

    public ConditionFactory pollInterval(Duration d)
    {
        pollInterval = d;
        return this;
    }

    public ConditionFactory pollInterval(long n, TimeUnit unit)
    {
        return pollInterval(Duration.ofMillis(unit.toMillis(n)));
    }

    public ConditionFactory pollInSameThread()
    {
        return this;
    }

    public void until(Callable<Boolean> condition)
    {
        long deadline = System.nanoTime() + atMost.toNanos();
        while ( true )
        {
            try
            {
                if ( Boolean.TRUE.equals(condition.call()) )
                {
                    return;
                }
            }
            catch ( RuntimeException e )
            {
                throw e;
            }
            catch ( Exception e )
            {
                throw new RuntimeException(e);
            }
            if ( System.nanoTime() > deadline )
            {
                throw new ConditionTimeoutException((alias != null ? "Condition with alias '" + alias + "'" : "Condition")
                    + " was not fulfilled within " + atMost.toMillis() + " ms");
            }
            try
            {
                Thread.sleep(pollInterval.toMillis());
            }
            catch ( InterruptedException e )
            {
                Thread.currentThread().interrupt();
                throw new RuntimeException(e);
            }
        }
    }
}
