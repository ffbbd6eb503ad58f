// Minimal stand-in for the Awaitility API that Curator's tests use (Awaitility is not packaged
// in Debian); written for tests/clients/curator_suite.sh, not Awaitility's code.
package org.awaitility;

import org.awaitility.core.ConditionFactory;

public class Awaitility
{
    public static ConditionFactory await()
    {
        return new ConditionFactory(null);
    }

    public static ConditionFactory await(String alias)
    {
        return new ConditionFactory(alias);
    }
}
