// A Java process taking a lock with one of Apache Curator's recipes, for the tests that
// check it and this crate share one lock on one ZooKeeper path.
//
// Usage: java CuratorHold <connect string> <lock path> <wait ms> <hold ms> [recipe]
// where recipe is `mutex` (InterProcessMutex, the default), `read` or `write` (the two
// sides of InterProcessReadWriteLock) or `permits=N` (one lease of InterProcessSemaphoreV2
// with N leases) or `leader` (leadership of a LeaderSelector, which takes an
// InterProcessMutex on the path).
// Prints "held" once it holds the lock (or "busy" if it could not get it within the wait),
// then "released" after holding it for the hold time (a negative one: until a line comes
// on standard input).

import java.util.concurrent.TimeUnit;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import java.util.concurrent.CountDownLatch;
import org.apache.curator.framework.recipes.leader.LeaderSelector;
import org.apache.curator.framework.recipes.leader.LeaderSelectorListenerAdapter;
import org.apache.curator.framework.recipes.locks.InterProcessLock;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.framework.recipes.locks.InterProcessReadWriteLock;
import org.apache.curator.framework.recipes.locks.InterProcessSemaphoreV2;
import org.apache.curator.framework.recipes.locks.Lease;
import org.apache.curator.retry.RetryOneTime;

public class CuratorHold {
    public static void main(String[] args) throws Exception {
        CuratorFramework client = CuratorFrameworkFactory.newClient(args[0], new RetryOneTime(100));
        client.start();
        String path = args[1];
        long wait = Long.parseLong(args[2]);
        long hold = Long.parseLong(args[3]);
        String recipe = args.length > 4 ? args[4] : "mutex";
        if (recipe.equals("leader")) {
            CountDownLatch elected = new CountDownLatch(1);
            CountDownLatch resign = new CountDownLatch(1);
            LeaderSelector selector = new LeaderSelector(client, path, new LeaderSelectorListenerAdapter() {
                @Override
                public void takeLeadership(CuratorFramework leader) throws Exception {
                    elected.countDown();
                    resign.await();
                }
            });
            selector.start();
            if (!elected.await(wait, TimeUnit.MILLISECONDS)) {
                selector.close();
                busy(client);
                return;
            }
            held(hold);
            resign.countDown();
            // Leadership (the mutex) is given up once takeLeadership returns.
            while (selector.hasLeadership()) {
                Thread.sleep(5);
            }
            selector.close();
        } else if (recipe.startsWith("permits=")) {
            int permits = Integer.parseInt(recipe.substring("permits=".length()));
            InterProcessSemaphoreV2 semaphore = new InterProcessSemaphoreV2(client, path, permits);
            Lease lease = semaphore.acquire(wait, TimeUnit.MILLISECONDS);
            if (lease == null) {
                busy(client);
                return;
            }
            held(hold);
            semaphore.returnLease(lease);
        } else {
            InterProcessLock lock;
            if (recipe.equals("read")) {
                lock = new InterProcessReadWriteLock(client, path).readLock();
            } else if (recipe.equals("write")) {
                lock = new InterProcessReadWriteLock(client, path).writeLock();
            } else {
                lock = new InterProcessMutex(client, path);
            }
            if (!lock.acquire(wait, TimeUnit.MILLISECONDS)) {
                busy(client);
                return;
            }
            held(hold);
            lock.release();
        }
        System.out.println("released");
        System.out.flush();
        client.close();
    }

    static void busy(CuratorFramework client) {
        System.out.println("busy");
        System.out.flush();
        client.close();
    }

    static void held(long hold) throws Exception {
        System.out.println("held");
        System.out.flush();
        if (hold < 0) {
            new java.io.BufferedReader(new java.io.InputStreamReader(System.in)).readLine();
        } else {
            Thread.sleep(hold);
        }
    }
}
