// Minimal stand-in for org.awaitility.core.ConditionTimeoutException (see ../Awaitility.java).
package org.awaitility.core;

public class ConditionTimeoutException extends RuntimeException
{
    public ConditionTimeoutException(String message)
    {
        super(message);
    }
}
