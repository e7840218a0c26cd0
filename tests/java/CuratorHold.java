// A Java process taking a lock with Apache Curator's InterProcessMutex, for the test that
// checks it and this crate exclude each other on one ZooKeeper path.
//
// Usage: java CuratorHold <connect string> <lock path> <wait ms> <hold ms>
// Prints "held" once it holds the lock (or "busy" if it could not get it within the wait),
// then "released" after holding it for the hold time.

import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.RetryOneTime;

public class CuratorHold {
    public static void main(String[] args) throws Exception {
        CuratorFramework client = CuratorFrameworkFactory.newClient(args[0], new RetryOneTime(100));
        client.start();
        InterProcessMutex mutex = new InterProcessMutex(client, args[1]);
        if (!mutex.acquire(Long.parseLong(args[2]), TimeUnit.MILLISECONDS)) {
            System.out.println("busy");
            System.out.flush();
            client.close();
            return;
        }
        System.out.println("held");
        System.out.flush();
        Thread.sleep(Long.parseLong(args[3]));
        mutex.release();
        System.out.println("released");
        System.out.flush();
        client.close();
    }
}
