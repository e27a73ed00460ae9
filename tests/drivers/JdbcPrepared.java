// JdbcPrepared.java - pgjdbc through a transaction-mode pooler, with prepareThreshold=1 (every
// PreparedStatement becomes a named server statement S_n at its first execution) or pgjdbc's default
// 5 (unnamed for the first 4 executions, S_n from the 5th on).
// Run as a single source file:
//   java -cp postgresql.jar JdbcPrepared.java JDBC_URL USER PASSWORD [THREADS [PREPARE_THRESHOLD]]
// Several connections, each: one PreparedStatement executed many times in autocommit and inside
// transactions (committed and rolled back), an executeBatch (many Bind/Execute, one Sync), and a
// failing execution. Checks every result; exits 1 with a message on the first wrong one.
// Prints a JSON summary.
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicInteger;

public class JdbcPrepared {
    static final AtomicInteger executions = new AtomicInteger();
    static final AtomicInteger transactions = new AtomicInteger();
    static final AtomicInteger batches = new AtomicInteger();

    static void check(boolean ok, String message) {
        if (!ok) throw new IllegalStateException("WRONG RESULT: " + message);
    }

    static long one(PreparedStatement ps, int a, String b) throws SQLException {
        ps.setInt(1, a);
        ps.setString(2, b);
        try (ResultSet rs = ps.executeQuery()) {
            check(rs.next(), "no row for " + a);
            check(rs.getInt("v") == a * 3 && (b + "!").equals(rs.getString("s")),
                  "for " + a + "/" + b + " got " + rs.getInt("v") + "/" + rs.getString("s"));
            long xid = rs.getLong("x");
            check(!rs.next(), "two rows for " + a);
            executions.incrementAndGet();
            return xid;
        }
    }

    static void worker(String url, Properties props, int id) throws SQLException {
        try (Connection c = DriverManager.getConnection(url, props)) {
            String table = "jdbc_t" + id;
            try (Statement st = c.createStatement()) {
                st.execute("DROP TABLE IF EXISTS " + table);
                st.execute("CREATE TABLE " + table + " (id int PRIMARY KEY, v text NOT NULL)");
            }
            try (PreparedStatement ps = c.prepareStatement(
                    "SELECT ?::int * 3 AS v, ?::text || '!' AS s, txid_current() AS x")) {
                // autocommit: every execution is its own transaction (maybe on another server)
                for (int i = 0; i < 30; i++) one(ps, id * 1000 + i, "a" + i);

                // transactions: same statement, one server for the whole transaction
                c.setAutoCommit(false);
                for (int t = 0; t < 10; t++) {
                    long first = one(ps, t, "t" + t);
                    for (int i = 1; i < 5; i++) {
                        long xid = one(ps, t * 10 + i, "t" + i);
                        check(xid == first, "transaction " + t + ": txid " + xid + " != " + first);
                    }
                    if (t % 3 == 2) c.rollback(); else c.commit();
                    transactions.incrementAndGet();
                }

                // executeBatch: pgjdbc sends the Parse (first time) and many Bind/Execute, one Sync
                try (PreparedStatement ins = c.prepareStatement("INSERT INTO " + table + " (id, v) VALUES (?, ?)")) {
                    for (int round = 0; round < 3; round++) {
                        for (int i = 0; i < 50; i++) {
                            ins.setInt(1, round * 100 + i);
                            ins.setString(2, "r" + round + "-" + i);
                            ins.addBatch();
                        }
                        int[] counts = ins.executeBatch();
                        check(counts.length == 50, "batch returned " + counts.length + " counts");
                        for (int n : counts) check(n == 1 || n == Statement.SUCCESS_NO_INFO, "batch count " + n);
                        if (round == 1) c.rollback(); else c.commit();
                        batches.incrementAndGet();
                    }
                }
                c.setAutoCommit(true);
                try (PreparedStatement q = c.prepareStatement(
                        "SELECT count(*), min(id), max(id), count(*) FILTER (WHERE v = 'r2-' || (id - 200)) FROM " + table)) {
                    for (int i = 0; i < 3; i++) {
                        try (ResultSet rs = q.executeQuery()) {
                            check(rs.next(), "no count row");
                            check(rs.getInt(1) == 100 && rs.getInt(2) == 0 && rs.getInt(3) == 249 && rs.getInt(4) == 50,
                                  "table " + table + " after batches: count=" + rs.getInt(1) + " min=" + rs.getInt(2)
                                  + " max=" + rs.getInt(3) + " round2=" + rs.getInt(4));
                        }
                    }
                }

                // a failing execution of a prepared statement, then the statement is used again
                try (PreparedStatement div = c.prepareStatement("SELECT 100 / ?::int")) {
                    for (int i = 0; i < 6; i++) {
                        div.setInt(1, i % 3);
                        try (ResultSet rs = div.executeQuery()) {
                            check(i % 3 != 0, "100 / 0 returned a row");
                            check(rs.next() && rs.getInt(1) == 100 / (i % 3), "100 / " + (i % 3));
                        } catch (SQLException e) {
                            check(i % 3 == 0 && "22012".equals(e.getSQLState()),
                                  "100 / " + (i % 3) + ": " + e.getSQLState() + " " + e.getMessage());
                        }
                    }
                }

                // autocommit again: the statement still works after everything above
                for (int i = 0; i < 20; i++) one(ps, -i, "z" + i);
            }
            try (Statement st = c.createStatement()) {
                st.execute("DROP TABLE " + table);
            }
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            System.err.println("usage: java -cp postgresql.jar JdbcPrepared.java JDBC_URL USER PASSWORD [THREADS [PREPARE_THRESHOLD]]");
            System.exit(2);
        }
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        int threads = args.length > 3 ? Integer.parseInt(args[3]) : 8;
        int threshold = args.length > 4 ? Integer.parseInt(args[4]) : 1;
        props.setProperty("prepareThreshold", Integer.toString(threshold));

        ExecutorService pool = Executors.newFixedThreadPool(threads);
        List<Future<Void>> futures = new ArrayList<>();
        for (int id = 0; id < threads; id++) {
            final int me = id;
            futures.add(pool.submit(() -> { worker(args[0], props, me); return null; }));
        }
        try {
            for (Future<Void> f : futures) f.get();
        } catch (java.util.concurrent.ExecutionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof SQLException) {
                System.err.println("ERROR: SQLSTATE " + ((SQLException) cause).getSQLState() + ": " + cause.getMessage());
            } else {
                System.err.println(cause.getMessage());
            }
            cause.printStackTrace();
            System.exit(1);
        } finally {
            pool.shutdownNow();
        }

        // The statement that runs this query was prepared under a pooler-owned name, not S_n.
        try (Connection c = DriverManager.getConnection(args[0], props);
             PreparedStatement ps = c.prepareStatement(
                 "SELECT name FROM pg_prepared_statements WHERE strpos(statement, 'jdbc_self_check') > 0 AND ?::int = 1")) {
            // executed until pgjdbc switches to a named statement (the threshold-th execution)
            for (int i = 1; i < Math.max(threshold, 1); i++) {
                ps.setInt(1, 1);
                ps.executeQuery().close();
            }
            ps.setInt(1, 1);
            try (ResultSet rs = ps.executeQuery()) {
                check(rs.next(), "self check: no row in pg_prepared_statements");
                String name = rs.getString(1);
                check(!name.startsWith("S_"), "self check: pgjdbc's name reached the server: " + name);
                check(!rs.next(), "self check: two rows");
                System.out.println("{\"executions\": " + executions.get() + ", \"transactions\": " + transactions.get()
                                   + ", \"batches\": " + batches.get() + ", \"threads\": " + threads
                                   + ", \"prepare_threshold\": " + threshold
                                   + ", \"server_statement_name\": \"" + name + "\"}");
            }
        }
    }
}
