package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// pairConf is the primary's configuration: commits wait for their WAL (and, once
// synchronous_standby_names names the replica, for the replica's flush) so that
// "acknowledged" means what it means in production. fsync stays off: the failures the tests
// make are process crashes, which the page cache survives.
const pairConf = baseConf + `fsync = off
full_page_writes = off
synchronous_commit = on
wal_keep_size = '256MB'
wal_sender_timeout = '5s'
wal_receiver_status_interval = '1s'
hot_standby_feedback = on
`

// replicaName is the replica's application_name, which synchronous_standby_names names.
const replicaName = "replica"

// Node is one server of a Pair.
type Node struct {
	// URL connects as the superuser "postgres" to the database "postgres".
	URL string
	// Port is where it listens, on 127.0.0.1.
	Port int

	home  string
	owner *account
	bin   binaries
}

// Pair is a primary and a streaming replica made from it with pg_basebackup -R, both
// throwaway clusters from the installed server binaries, for failover tests: kill the primary,
// promote the replica, stall the replication between them.
type Pair struct {
	Primary, Replica *Node
	logf             func(string, ...any)
}

// PairOptions configure StartPair.
type PairOptions struct {
	// Synchronous makes the replica a synchronous standby (synchronous_standby_names), so a
	// commit returns only once the replica has flushed it.
	Synchronous bool
	// Logf receives progress lines (nil: slog at debug level).
	Logf func(format string, args ...any)
}

// StartPair starts a primary and a streaming replica of it. The error wraps ErrNoServer when
// this machine has no PostgreSQL server binaries (a container cannot be the pair's replica).
func StartPair(ctx context.Context, opts PairOptions) (_ *Pair, err error) {
	o := Options{Logf: opts.Logf}
	bin, err := findBinaries()
	if err != nil {
		return nil, fmt.Errorf("%w: a primary and replica pair needs the PostgreSQL server binaries (pg_basebackup among them): %v", ErrNoServer, err)
	}
	basebackup := filepath.Join(filepath.Dir(bin.initdb), "pg_basebackup")
	if _, err := os.Stat(basebackup); err != nil {
		return nil, fmt.Errorf("%w: no pg_basebackup next to %s", ErrNoServer, bin.initdb)
	}
	owner, err := serverAccount()
	if err != nil {
		return nil, err
	}
	p := &Pair{logf: o.logf}
	defer func() {
		if err != nil {
			err = errors.Join(err, p.Stop())
		}
	}()
	begin := time.Now()
	if p.Primary, err = newNode(owner, bin); err != nil {
		return nil, err
	}
	if err := initCluster(ctx, owner, bin, p.Primary.home, pairConf, "--no-sync"); err != nil {
		return nil, err
	}
	if err := p.Primary.start(ctx, o); err != nil {
		return nil, err
	}
	if p.Replica, err = newNode(owner, bin); err != nil {
		return nil, err
	}
	data := filepath.Join(p.Replica.home, dataSubdir)
	if out, err := runAs(ctx, owner, p.Replica.home, false, basebackup, "-D", data, "-h", "127.0.0.1",
		"-p", strconv.Itoa(p.Primary.Port), "-U", "postgres", "-R", "-X", "stream", "-c", "fast", "--no-sync"); err != nil {
		return nil, fmt.Errorf("pg_basebackup: %w: %s", err, strings.TrimSpace(out))
	}
	// -R wrote primary_conninfo; the name synchronous_standby_names refers to is added here.
	conninfo := fmt.Sprintf("\nprimary_conninfo = 'host=127.0.0.1 port=%d user=postgres application_name=%s'\n", p.Primary.Port, replicaName)
	if err := appendFile(filepath.Join(data, "postgresql.auto.conf"), conninfo); err != nil {
		return nil, err
	}
	if err := p.Replica.start(ctx, o); err != nil {
		return nil, err
	}
	if err := p.WaitStreaming(ctx); err != nil {
		return nil, err
	}
	if opts.Synchronous {
		if err := p.Synchronous(ctx, true); err != nil {
			return nil, err
		}
	}
	o.logf("pgcluster: primary at %s and replica at %s streaming in %s (synchronous: %t)", p.Primary.URL, p.Replica.URL,
		time.Since(begin).Round(time.Millisecond), opts.Synchronous)
	return p, nil
}

func newNode(owner *account, bin binaries) (*Node, error) {
	base := os.TempDir()
	if owner.traversableBy(base) != nil {
		base = "/tmp"
	}
	home, err := os.MkdirTemp(base, "pgcluster-")
	if err != nil {
		return nil, err
	}
	if err := owner.chown(home); err != nil {
		return nil, errors.Join(err, os.RemoveAll(home))
	}
	return &Node{home: home, owner: owner, bin: bin}, nil
}

func (n *Node) start(ctx context.Context, o Options) error {
	port, err := startServer(ctx, o, n.owner, n.bin, n.home, false, freePort)
	if err != nil {
		return err
	}
	n.Port, n.URL = port, clusterURL(port)
	return waitReady(ctx, n.URL, "")
}

// URLs returns a URL naming both servers, primary first, for database db, with more query
// parameters (e.g. "target_session_attrs=read-write"): the form of DATABASE_URL that follows a
// failover.
func (p *Pair) URLs(db string, params ...string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d,127.0.0.1:%d/%s?%s", p.Primary.Port, p.Replica.Port, db,
		strings.Join(append([]string{"sslmode=disable"}, params...), "&"))
}

// WaitStreaming waits until the primary streams to the replica.
func (p *Pair) WaitStreaming(ctx context.Context) error {
	for {
		var n int
		err := p.Primary.QueryRow(ctx, `SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'`, &n)
		if err == nil && n > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the replica does not stream from the primary: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// WaitReplayed waits until the replica has replayed everything the primary had written when
// it was called.
func (p *Pair) WaitReplayed(ctx context.Context) error {
	var lsn string
	if err := p.Primary.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`, &lsn); err != nil {
		return err
	}
	for {
		var done bool
		err := p.Replica.QueryRow(ctx, `SELECT pg_last_wal_replay_lsn() >= $1::pg_lsn`, &done, lsn)
		if err == nil && done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the replica did not replay up to %s: %w (last error: %v)", lsn, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Database creates database name on the primary, runs prepare on its URL (migrations, say),
// and waits until the replica has replayed it all. It returns the database's URLs on the
// primary and on the replica.
func (p *Pair) Database(ctx context.Context, name string, prepare func(url string) error) (primary, replica string, err error) {
	if err := p.Primary.Exec(ctx, `CREATE DATABASE `+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", "", err
	}
	primary, replica = p.Primary.DatabaseURL(name), p.Replica.DatabaseURL(name)
	if prepare != nil {
		if err := prepare(primary); err != nil {
			return "", "", err
		}
	}
	return primary, replica, p.WaitReplayed(ctx)
}

// DatabaseURL is the URL of database db on the node, as the superuser.
func (n *Node) DatabaseURL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable&connect_timeout=2", n.Port, db)
}

// PauseReplay stops the replica replaying the WAL (pg_wal_replay_pause): it goes on receiving
// it, and answers reads with what it had replayed, as a replica that lags does. resume starts
// replay again.
func (p *Pair) PauseReplay(ctx context.Context) (resume func(context.Context) error, err error) {
	if err := p.Replica.Exec(ctx, `SELECT pg_wal_replay_pause()`); err != nil {
		return nil, err
	}
	for {
		var state string
		if err := p.Replica.QueryRow(ctx, `SELECT pg_get_wal_replay_pause_state()`, &state); err != nil {
			return nil, err
		}
		if state == "paused" {
			break
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("replay did not pause: %w", ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
	return func(ctx context.Context) error { return p.Replica.Exec(ctx, `SELECT pg_wal_replay_resume()`) }, nil
}

// StallReplication stops the primary's WAL sender (SIGSTOP): the replica falls behind while
// the primary goes on committing, as in a network partition. resume sends SIGCONT.
func (p *Pair) StallReplication(ctx context.Context) (resume func() error, err error) {
	var pids []int
	rows, err := p.Primary.query(ctx, `SELECT pid FROM pg_stat_replication`)
	if err != nil {
		return nil, err
	}
	for _, r := range rows {
		pids = append(pids, int(r.(int32)))
	}
	if len(pids) == 0 {
		return nil, errors.New("the primary has no WAL sender to stall")
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
			return nil, fmt.Errorf("stop WAL sender %d: %w", pid, err)
		}
	}
	return func() error {
		var errs []error
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, err)
			}
		}
		return errors.Join(errs...)
	}, nil
}

// Synchronous sets the primary's synchronous_standby_names to the replica (on) or to none.
func (p *Pair) Synchronous(ctx context.Context, on bool) error {
	names, want := "", "async"
	if on {
		names, want = replicaName, "sync"
	}
	if err := p.Primary.Exec(ctx, `ALTER SYSTEM SET synchronous_standby_names = '`+names+`'`, `SELECT pg_reload_conf()`); err != nil {
		return err
	}
	// The reload reaches the WAL sender a moment later.
	for {
		var state string
		err := p.Primary.QueryRow(ctx, `SELECT sync_state FROM pg_stat_replication WHERE application_name = $1`, &state, replicaName)
		if err == nil && state == want {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the replica's sync_state is %q, not %q: %w (last error: %v)", state, want, ctx.Err(), err)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop shuts both servers down and deletes their data.
func (p *Pair) Stop() error {
	var errs []error
	for _, n := range []*Node{p.Primary, p.Replica} {
		if n != nil {
			errs = append(errs, n.remove())
		}
	}
	return errors.Join(errs...)
}

// Kill crashes the server as a power cut would: every one of its processes gets SIGKILL at
// once (the postmaster is stopped first so that it cannot react to its children's deaths).
// What its clients had not been answered is lost with it, and whatever it had not sent its
// replica.
func (n *Node) Kill() error {
	pm, err := n.postmaster()
	if err != nil {
		return err
	}
	if err := syscall.Kill(pm, syscall.SIGSTOP); err != nil {
		return fmt.Errorf("stop postmaster %d: %w", pm, err)
	}
	for _, c := range children(pm) {
		_ = syscall.Kill(c, syscall.SIGKILL) // one may have exited meanwhile
	}
	if err := syscall.Kill(pm, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill postmaster %d: %w", pm, err)
	}
	for range 100 {
		if !alive(pm) {
			return nil
		}
		time.Sleep(10 * time.Millisecond)
	}
	return fmt.Errorf("postmaster %d survived SIGKILL", pm)
}

// Promote makes a replica the primary (pg_ctl promote) and returns once it takes writes.
func (n *Node) Promote(ctx context.Context) error {
	data := filepath.Join(n.home, dataSubdir)
	if out, err := runAs(ctx, n.owner, n.home, false, n.bin.pgCtl, "promote", "-w", "-t", startTimeout(ctx), "-D", data); err != nil {
		return fmt.Errorf("pg_ctl promote: %w: %s", err, strings.TrimSpace(out))
	}
	return nil
}

// ReadOnly makes a running primary refuse writes from now on (default_transaction_read_only,
// reloaded): what a client of a primary being demoted meets.
func (n *Node) ReadOnly(ctx context.Context) error {
	return n.Exec(ctx, `ALTER SYSTEM SET default_transaction_read_only = on`, `SELECT pg_reload_conf()`)
}

// Exec runs statements on the node's postgres database, one connection for all.
func (n *Node) Exec(ctx context.Context, sqls ...string) error {
	conn, err := pgx.Connect(ctx, n.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	for _, sql := range sqls {
		if _, err := conn.Exec(ctx, sql); err != nil {
			return fmt.Errorf("%s: %w", sql, err)
		}
	}
	return nil
}

// QueryRow scans the one row of sql into dest.
func (n *Node) QueryRow(ctx context.Context, sql string, dest any, args ...any) error {
	conn, err := pgx.Connect(ctx, n.URL)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql, args...).Scan(dest)
}

// query returns the first column of every row of sql.
func (n *Node) query(ctx context.Context, sql string) ([]any, error) {
	conn, err := pgx.Connect(ctx, n.URL)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	rows, err := conn.Query(ctx, sql)
	if err != nil {
		return nil, err
	}
	var out []any
	for rows.Next() {
		v, err := rows.Values()
		if err != nil {
			return nil, err
		}
		out = append(out, v[0])
	}
	return out, rows.Err()
}

func (n *Node) postmaster() (int, error) {
	b, err := os.ReadFile(filepath.Join(n.home, dataSubdir, "postmaster.pid"))
	if err != nil {
		return 0, fmt.Errorf("the server is not running: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(strings.SplitN(string(b), "\n", 2)[0]))
	if err != nil {
		return 0, fmt.Errorf("postmaster.pid: %w", err)
	}
	return pid, nil
}

func (n *Node) remove() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	data := filepath.Join(n.home, dataSubdir)
	if pm, err := n.postmaster(); err == nil && alive(pm) {
		if out, err := runAs(ctx, n.owner, n.home, false, n.bin.pgCtl, "stop", "-D", data, "-m", "immediate", "-w"); err != nil {
			errs = append(errs, fmt.Errorf("pg_ctl stop: %w: %s", err, strings.TrimSpace(out)))
		}
	}
	return errors.Join(append(errs, os.RemoveAll(n.home))...)
}

// alive reports whether process pid runs: a zombie (a killed postmaster that its parent, init
// in a container that may never reap, has not reaped) does not.
func alive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return syscall.Kill(pid, 0) == nil // no /proc: a signal tells
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	return len(fields) > 0 && fields[0] != "Z" && fields[0] != "X"
}

// children lists the processes whose parent is pid (Linux /proc).
func children(pid int) []int {
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so read after its closing parenthesis.
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 1 && fields[1] == strconv.Itoa(pid) {
			out = append(out, child)
		}
	}
	return out
}

func appendFile(path, text string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(text)
	return errors.Join(err, f.Close())
}
