package pgcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Settings appended to postgresql.conf after initdb. Unix sockets are off:
// clients use the TCP URL, a socket path under a deep data directory could
// exceed the 107-byte limit, and the default socket directory may belong to
// a system server. pg_ctl waits and stops through postmaster.pid, so it
// needs no socket either.
const baseConf = `
# Added by test/pgcluster.
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
`

// throwawayConf trades durability for speed: the data is deleted on Stop.
const throwawayConf = baseConf + `fsync = off
synchronous_commit = off
full_page_writes = off
`

// persistentConf keeps fsync and full-page writes, so an OS crash cannot
// corrupt the `make run` data; only synchronous_commit is off, which at worst
// loses the last few commits and never corrupts anything.
const persistentConf = baseConf + `synchronous_commit = off
`

const (
	dataSubdir = "data"         // the PGDATA inside a cluster home
	logName    = "postgres.log" // server log, next to PGDATA
	portName   = "port"         // persistent clusters: the port to reuse
	lockName   = ".lock"        // persistent clusters: serialises Start/Stop
)

// relocationRoot holds persistent clusters whose DataDir the server account
// cannot reach (see initPersistent). It is under /var/lib rather than a temp
// directory because tmp cleaners would eventually delete files of a cluster
// left unused for a while, corrupting it.
const relocationRoot = "/var/lib/pgcluster"

// startTimeout is the pg_ctl -t value in seconds for the time left in ctx.
func startTimeout(ctx context.Context) string {
	secs := 60
	if dl, ok := ctx.Deadline(); ok {
		secs = int(time.Until(dl).Seconds())
	}
	return strconv.Itoa(max(secs, 1))
}

// startThrowaway initialises a cluster in a fresh temporary directory and
// starts it; Stop shuts it down and deletes the directory.
func startThrowaway(ctx context.Context, opts Options, bin binaries) (srv *Server, err error) {
	begin := time.Now()
	owner, err := serverAccount()
	if err != nil {
		return nil, err
	}
	// The server account must be able to reach the directory; TMPDIR may
	// point into root's home, so fall back to /tmp (mode 1777) then.
	base := os.TempDir()
	if err := owner.traversableBy(base); err != nil {
		opts.logf("pgcluster: %v; using /tmp instead of %s", err, base)
		base = "/tmp"
		if err := owner.traversableBy(base); err != nil {
			return nil, err
		}
	}
	home, err := os.MkdirTemp(base, "pgcluster-")
	if err != nil {
		return nil, err
	}
	data := filepath.Join(home, dataSubdir)
	stop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		var errs []error
		if _, err := os.Stat(filepath.Join(data, "postmaster.pid")); err == nil {
			// Immediate mode: the data is about to be deleted, so skip the
			// shutdown checkpoint.
			if out, err := runAs(ctx, owner, home, false, bin.pgCtl, "stop", "-D", data, "-m", "immediate", "-w"); err != nil {
				errs = append(errs, fmt.Errorf("pg_ctl stop: %w: %s", err, strings.TrimSpace(out)))
			}
		}
		if err := os.RemoveAll(home); err != nil {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, stop())
		}
	}()
	if err := owner.chown(home); err != nil {
		return nil, err
	}

	if err := initCluster(ctx, owner, bin, home, throwawayConf, "--no-sync"); err != nil {
		return nil, err
	}
	initDone := time.Now()
	port, err := startServer(ctx, opts, owner, bin, home, false, freePort)
	if err != nil {
		return nil, err
	}
	url := clusterURL(port)
	if err := waitReady(ctx, url, ""); err != nil {
		return nil, err
	}
	opts.logf("pgcluster: throwaway cluster in %s ready at %s (initdb %s, start %s)", home, url,
		initDone.Sub(begin).Round(time.Millisecond), time.Since(initDone).Round(time.Millisecond))
	return &Server{URL: url, dir: home, stop: stop}, nil
}

// initCluster runs initdb for home/data and appends conf to its
// postgresql.conf. Trust authentication is fine: the server listens on
// 127.0.0.1 only and holds test or local dev data.
func initCluster(ctx context.Context, owner *account, bin binaries, home, conf string, extra ...string) error {
	data := filepath.Join(home, dataSubdir)
	args := append([]string{"-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C"}, extra...)
	if out, err := runAs(ctx, owner, home, false, bin.initdb, args...); err != nil {
		return fmt.Errorf("initdb (as %s) in %s: %w: %s", owner.name, data, err, strings.TrimSpace(out))
	}
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteString(conf)
	return errors.Join(err, f.Close())
}

// startServer starts the cluster in home with pg_ctl on a port from
// nextPort, logging to home/postgres.log, and returns the port. Between
// picking a free port and the server binding it another process may take
// it, so a bind failure is retried on another port.
func startServer(ctx context.Context, opts Options, owner *account, bin binaries, home string, ownGroup bool, nextPort func() (int, error)) (int, error) {
	data := filepath.Join(home, dataSubdir)
	logFile := filepath.Join(home, logName)
	var lastErr error
	for range 3 {
		port, err := nextPort()
		if err != nil {
			return 0, err
		}
		logStart := fileSize(logFile)
		out, err := runAs(ctx, owner, home, ownGroup, bin.pgCtl,
			"start", "-w", "-t", startTimeout(ctx), "-D", data, "-l", logFile, "-o", "-p "+strconv.Itoa(port))
		if err == nil {
			return port, nil
		}
		serverLog := readFrom(logFile, logStart)
		lastErr = fmt.Errorf("pg_ctl start (as %s) on port %d: %w: %s\n%s: %s", owner.name, port, err,
			strings.TrimSpace(out), logFile, strings.TrimSpace(serverLog))
		if !strings.Contains(serverLog, "already in use") {
			return 0, lastErr
		}
		opts.logf("pgcluster: port %d was taken meanwhile; trying another", port)
		nextPort = freePort
	}
	return 0, lastErr
}

// startPersistent starts or reuses the cluster kept in opts.DataDir.
//
// Layout of DataDir: data/ (PGDATA), postgres.log, port (the port to reuse
// so the URL stays stable) and .lock (serialises concurrent Starts, e.g. two
// `make run` at once). data/ may be a symlink, see initPersistent.
func startPersistent(ctx context.Context, opts Options, bin binaries) (*Server, error) {
	begin := time.Now()
	dir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, err
	}
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return nil, err
	}
	defer unlock()

	data, initialised, err := persistentData(dir)
	if err != nil {
		return nil, err
	}
	if !initialised {
		if data, err = initPersistent(ctx, opts, bin, dir); err != nil {
			return nil, err
		}
	}
	owner, err := ownerOf(data)
	if err != nil {
		return nil, err
	}
	home := filepath.Dir(data)

	if port, running := postmasterPort(ctx, owner, bin, home, data); running {
		if port == 0 {
			port = readPort(dir)
		}
		if port == 0 {
			return nil, fmt.Errorf("persistent cluster in %s is running, but its port is in neither postmaster.pid nor %s; stop it with pg_ctl stop -D %s", dir, portName, data)
		}
		url := clusterURL(port)
		if err := waitReady(ctx, url, data); err != nil {
			return nil, fmt.Errorf("persistent cluster in %s is running but does not answer: %w", dir, err)
		}
		writePort(dir, port) // keep the file right if the server was started by hand
		opts.logf("pgcluster: reusing running cluster in %s at %s", dir, url)
		return &Server{URL: url}, nil
	}

	stored := readPort(dir)
	port, err := startServer(ctx, opts, owner, bin, home, true, func() (int, error) {
		if stored != 0 && portFree(stored) {
			return stored, nil
		}
		if stored != 0 {
			opts.logf("pgcluster: port %d of %s is taken by another program; moving the cluster to a new port", stored, dir)
		}
		stored = 0
		return freePort()
	})
	if err != nil {
		return nil, err
	}
	if err := writePort(dir, port); err != nil {
		return nil, err
	}
	url := clusterURL(port)
	if err := waitReady(ctx, url, data); err != nil {
		return nil, err
	}
	opts.logf("pgcluster: started cluster in %s at %s in %s; it keeps running after this run", dir, url, time.Since(begin).Round(time.Millisecond))
	return &Server{URL: url}, nil
}

// persistentData resolves dir/data to the real PGDATA and reports whether
// it holds a cluster. A dangling symlink (its relocated cluster was
// deleted) or an empty directory count as "not initialised" and are removed
// so initdb can start afresh.
func persistentData(dir string) (data string, initialised bool, err error) {
	link := filepath.Join(dir, dataSubdir)
	fi, err := os.Lstat(link)
	if errors.Is(err, os.ErrNotExist) {
		return "", false, nil
	}
	if err != nil {
		return "", false, err
	}
	if fi.Mode()&os.ModeSymlink != 0 {
		real, err := filepath.EvalSymlinks(link)
		if err != nil {
			return "", false, os.Remove(link)
		}
		data = real
	} else {
		data = link
	}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err == nil {
		return data, true, nil
	}
	if entries, err := os.ReadDir(data); err == nil && len(entries) == 0 {
		return "", false, os.Remove(data)
	}
	return "", false, fmt.Errorf("%s exists but holds no PostgreSQL cluster (no PG_VERSION); remove %s to start afresh", data, dir)
}

// initPersistent creates the cluster of dir and returns its PGDATA.
//
// As root the server runs as another account, which must be able to reach
// its data directory. A DataDir inside a repository under a home directory
// such as /root (mode 0700) is out of its reach, and changing the modes of
// someone's home directory is not ours to do. In that case the cluster
// lives in /var/lib/pgcluster/<hash of DataDir> and DataDir/data and
// DataDir/postgres.log are symlinks to it, so the DataDir stays the one place
// to look and everything else (port, lock, reuse) works unchanged.
// RemovePersistent deletes both.
func initPersistent(ctx context.Context, opts Options, bin binaries, dir string) (string, error) {
	owner, err := serverAccount()
	if err != nil {
		return "", err
	}
	home := dir
	if reachErr := owner.traversableBy(filepath.Dir(dir)); reachErr != nil {
		sum := sha256.Sum256([]byte(dir))
		home = filepath.Join(relocationRoot, hex.EncodeToString(sum[:6]))
		opts.logf("pgcluster: %v, so the cluster for %s goes to %s (symlinked from it)", reachErr, dir, home)
		if err := os.MkdirAll(relocationRoot, 0o755); err != nil {
			return "", fmt.Errorf("%v, and the fallback location failed: %w", reachErr, err)
		}
		if err := owner.traversableBy(relocationRoot); err != nil {
			return "", fmt.Errorf("%v, and the fallback location is not reachable either: %w", reachErr, err)
		}
		// Leftovers of an earlier cluster for the same DataDir, whose symlink
		// the user deleted to start afresh.
		if err := os.RemoveAll(home); err != nil {
			return "", err
		}
		if err := os.Mkdir(home, 0o700); err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(home, "SOURCE"), []byte("pgcluster: persistent cluster for "+dir+"\n"), 0o644); err != nil {
			return "", err
		}
	}
	if err := owner.chown(home); err != nil {
		return "", err
	}
	opts.logf("pgcluster: initialising a cluster in %s with %s (as %s)", home, bin.initdb, owner.name)
	if err := initCluster(ctx, owner, bin, home, persistentConf); err != nil {
		if home != dir {
			_ = os.RemoveAll(home)
		}
		return "", err
	}
	data := filepath.Join(home, dataSubdir)
	if home != dir {
		for _, name := range []string{dataSubdir, logName} {
			link := filepath.Join(dir, name)
			_ = os.Remove(link)
			if err := os.Symlink(filepath.Join(home, name), link); err != nil {
				return "", err
			}
		}
	}
	return data, nil
}

// postmasterPort reports whether the cluster is running and on which port,
// read from postmaster.pid (0 if unreadable). pg_ctl status decides
// "running", because it checks that the recorded process is alive.
func postmasterPort(ctx context.Context, owner *account, bin binaries, home, data string) (int, bool) {
	if _, err := runAs(ctx, owner, home, false, bin.pgCtl, "status", "-D", data); err != nil {
		return 0, false // exit status 3: not running
	}
	b, err := os.ReadFile(filepath.Join(data, "postmaster.pid"))
	if err != nil {
		return 0, true
	}
	lines := strings.Split(string(b), "\n")
	if len(lines) < 4 {
		return 0, true
	}
	port, _ := strconv.Atoi(strings.TrimSpace(lines[3]))
	return port, true
}

// StopPersistent shuts down the persistent cluster in dataDir if it is
// running, leaving its data in place. Stop deliberately leaves persistent
// servers running between runs; tests and cleanup scripts use this instead.
func StopPersistent(dataDir string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := lockDir(ctx, dir)
	if err != nil {
		return err
	}
	defer unlock()
	return stopPersistentLocked(ctx, dir)
}

func stopPersistentLocked(ctx context.Context, dir string) error {
	data, initialised, err := persistentData(dir)
	if err != nil || !initialised {
		return err
	}
	bin, err := findBinaries()
	if err != nil {
		return err
	}
	owner, err := ownerOf(data)
	if err != nil {
		return err
	}
	home := filepath.Dir(data)
	if _, running := postmasterPort(ctx, owner, bin, home, data); !running {
		return nil
	}
	// Fast mode: roll back open sessions (a forgotten psql must not block
	// the stop) but still write a clean shutdown checkpoint.
	if out, err := runAs(ctx, owner, home, false, bin.pgCtl, "stop", "-D", data, "-m", "fast", "-w", "-t", startTimeout(ctx)); err != nil {
		return fmt.Errorf("pg_ctl stop %s: %w: %s", data, err, strings.TrimSpace(out))
	}
	return nil
}

// RemovePersistent stops the persistent cluster in dataDir and deletes
// dataDir together with a relocated cluster it links to (see Options), so
// tests leave nothing behind.
func RemovePersistent(dataDir string) error {
	dir, err := filepath.Abs(dataDir)
	if err != nil {
		return err
	}
	if err := StopPersistent(dir); err != nil {
		return err
	}
	if real, err := filepath.EvalSymlinks(filepath.Join(dir, dataSubdir)); err == nil {
		if home := filepath.Dir(real); home != dir && strings.HasPrefix(home, relocationRoot+"/") {
			if err := os.RemoveAll(home); err != nil {
				return err
			}
			_ = os.Remove(relocationRoot) // only succeeds once it is empty
		}
	}
	return os.RemoveAll(dir)
}

// lockDir takes an exclusive flock on dir/.lock, polling so that ctx can
// end the wait.
func lockDir(ctx context.Context, dir string) (func(), error) {
	f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() {
				_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
				_ = f.Close()
			}, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			_ = f.Close()
			return nil, fmt.Errorf("lock %s: %w", f.Name(), err)
		}
		select {
		case <-ctx.Done():
			_ = f.Close()
			return nil, fmt.Errorf("another process holds %s: %w", f.Name(), ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func clusterURL(port int) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", port)
}

// reservedPort is never handed out: it is where a system PostgreSQL
// listens, and a test cluster must not be mistaken for it or block it.
const reservedPort = 5432

// freePort asks the kernel for a free TCP port on 127.0.0.1.
func freePort() (int, error) {
	for range 10 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if err := l.Close(); err != nil {
			return 0, err
		}
		if port != reservedPort {
			return port, nil
		}
	}
	return 0, errors.New("no free TCP port on 127.0.0.1")
}

func portFree(port int) bool {
	if port == reservedPort {
		return false
	}
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	_ = l.Close()
	return true
}

func readPort(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, portName))
	if err != nil {
		return 0
	}
	port, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return port
}

func writePort(dir string, port int) error {
	if port == 0 || readPort(dir) == port {
		return nil
	}
	return os.WriteFile(filepath.Join(dir, portName), []byte(strconv.Itoa(port)+"\n"), 0o644)
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns the end of a log file from offset, at most 4 KiB, for
// error messages.
func readFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	if size := fileSize(path); size-offset > 4096 {
		offset = size - 4096
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return ""
	}
	b, _ := io.ReadAll(f)
	return string(b)
}

// redact hides a password in url for logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

// samePath compares two paths after resolving symlinks, since the server
// reports its data directory as it was given on the command line.
func samePath(a, b string) bool {
	if ra, err := filepath.EvalSymlinks(a); err == nil {
		a = ra
	}
	if rb, err := filepath.EvalSymlinks(b); err == nil {
		b = rb
	}
	return filepath.Clean(a) == filepath.Clean(b)
}
