// The benchmark's Curator side: Apache Curator's InterProcessMutex, in a process of its own.
//
// Usage: java CuratorBench <connect string> cycles <tasks> <millis> <server pid>
//        java CuratorBench <connect string> handoff <tasks> <millis>
//
// `cycles`: <tasks> threads, each taking and releasing its own lock
// (/bench/curator/<i>) back to back; after a second of warm-up (the JIT), for <millis>.
// Prints the cycles, the elapsed time, this process's CPU time and the server's (its
// threads' schedstat), in nanoseconds, then every cycle's latency.
//
// `handoff`: <tasks> threads on one lock, each holding it 1 ms; a thread that released
// waits until another has taken it before it competes again, so every hand-over goes to a
// waiter. Prints the acquisitions and the elapsed time (then two zeros), then every gap from
// one holder's release to the next holder's acquire.

import java.lang.management.ManagementFactory;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.locks.LockSupport;
import java.util.stream.Stream;
import org.apache.curator.framework.CuratorFramework;
import org.apache.curator.framework.CuratorFrameworkFactory;
import org.apache.curator.framework.recipes.locks.InterProcessMutex;
import org.apache.curator.retry.RetryOneTime;

public class CuratorBench {
    public static void main(String[] args) throws Exception {
        CuratorFramework client = CuratorFrameworkFactory.newClient(args[0], new RetryOneTime(100));
        client.start();
        client.blockUntilConnected();
        int tasks = Integer.parseInt(args[2]);
        long millis = Long.parseLong(args[3]);
        if (args[1].equals("cycles")) {
            cycles(client, tasks, millis, args[4]);
        } else {
            handoff(client, tasks, millis);
        }
        client.close();
        System.exit(0);
    }

    static void cycles(CuratorFramework client, int tasks, long millis, String server) throws Exception {
        InterProcessMutex[] locks = new InterProcessMutex[tasks];
        for (int i = 0; i < tasks; i++) {
            locks[i] = new InterProcessMutex(client, "/bench/curator/" + i);
        }
        run(locks, 1000, new ArrayList<>());
        List<Long> samples = Collections.synchronizedList(new ArrayList<>());
        long cpu = processCpu();
        long serverCpu = threadsCpu(server);
        long started = System.nanoTime();
        run(locks, millis, samples);
        long elapsed = System.nanoTime() - started;
        cpu = processCpu() - cpu;
        serverCpu = threadsCpu(server) - serverCpu;
        print(samples.size(), elapsed, cpu, serverCpu, samples);
    }

    /// Every lock in `locks` cycled by a thread of its own for `millis`.
    static void run(InterProcessMutex[] locks, long millis, List<Long> samples) throws Exception {
        long deadline = System.nanoTime() + millis * 1_000_000L;
        List<Thread> threads = new ArrayList<>();
        for (InterProcessMutex lock : locks) {
            Thread thread = new Thread(() -> {
                try {
                    while (System.nanoTime() < deadline) {
                        long start = System.nanoTime();
                        lock.acquire();
                        lock.release();
                        samples.add(System.nanoTime() - start);
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            thread.start();
            threads.add(thread);
        }
        for (Thread thread : threads) {
            thread.join();
        }
    }

    static void handoff(CuratorFramework client, int tasks, long millis) throws Exception {
        AtomicLong taken = new AtomicLong();
        List<long[]> holdings = Collections.synchronizedList(new ArrayList<>());
        long started = System.nanoTime();
        long deadline = started + millis * 1_000_000L;
        List<Thread> threads = new ArrayList<>();
        for (int i = 0; i < tasks; i++) {
            InterProcessMutex lock = new InterProcessMutex(client, "/bench/curator-handoff");
            Thread thread = new Thread(() -> {
                try {
                    long mine = -1;
                    while (System.nanoTime() < deadline) {
                        // Wait until someone else has taken it since this thread released.
                        // (Polled every 50 us: a spinning thread would take a core
                        // from the others on a small machine.)
                        while (taken.get() == mine && System.nanoTime() < deadline) {
                            LockSupport.parkNanos(50_000);
                        }
                        lock.acquire();
                        long acquired = System.nanoTime();
                        mine = taken.incrementAndGet();
                        Thread.sleep(1);
                        lock.release();
                        holdings.add(new long[] {acquired, System.nanoTime()});
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            thread.start();
            threads.add(thread);
        }
        for (Thread thread : threads) {
            thread.join();
        }
        long elapsed = System.nanoTime() - started;
        List<long[]> sorted = new ArrayList<>(holdings);
        sorted.sort((a, b) -> Long.compare(a[0], b[0]));
        List<Long> gaps = new ArrayList<>();
        for (int i = 1; i < sorted.size(); i++) {
            gaps.add(Math.max(0, sorted.get(i)[0] - sorted.get(i - 1)[1]));
        }
        print(sorted.size(), elapsed, 0, 0, gaps);
    }

    static void print(long count, long elapsed, long cpu, long serverCpu, List<Long> samples) {
        StringBuilder out = new StringBuilder();
        out.append(count).append(' ').append(elapsed).append(' ').append(cpu).append(' ')
            .append(serverCpu).append('\n');
        synchronized (samples) {
            for (long sample : samples) {
                out.append(sample).append(' ');
            }
        }
        System.out.println(out);
    }

    static long processCpu() {
        return ((com.sun.management.OperatingSystemMXBean) ManagementFactory.getOperatingSystemMXBean())
            .getProcessCpuTime();
    }

    /// The CPU time of every thread of process `pid`, from their schedstat.
    static long threadsCpu(String pid) throws Exception {
        long total = 0;
        try (Stream<Path> tasks = Files.list(Path.of("/proc", pid, "task"))) {
            for (Path task : (Iterable<Path>) tasks::iterator) {
                try {
                    total += Long.parseLong(Files.readString(task.resolve("schedstat")).split(" ")[0]);
                } catch (Exception gone) {
                    // A thread that ended meanwhile.
                }
            }
        }
        return total;
    }
}
