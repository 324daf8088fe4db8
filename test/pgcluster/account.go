package pgcluster

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// account is the OS user that owns a cluster and runs its programs.
type account struct {
	name     string
	uid, gid uint32
	// switchTo is set when this process is root and must drop to the
	// account to run initdb and pg_ctl, which refuse to run as root.
	switchTo bool
}

// serverAccount picks the user that will own a new cluster: the current
// user normally; as root the "postgres" user if it exists, else "nobody".
func serverAccount() (*account, error) {
	if os.Geteuid() != 0 {
		return &account{name: "current user", uid: uint32(os.Geteuid()), gid: uint32(os.Getegid())}, nil
	}
	var errs []error
	for _, name := range []string{"postgres", "nobody"} {
		u, err := user.Lookup(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		a, err := accountFrom(u)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		return a, nil
	}
	return nil, fmt.Errorf("running as root, and PostgreSQL refuses to run as root, but no user to run it as was found (%v); "+
		"create a postgres user (e.g. `useradd --system postgres`) or run as a non-root user", errs)
}

// ownerOf returns the account owning an existing cluster's data directory:
// the server must run as that user, whoever created it.
func ownerOf(dataDir string) (*account, error) {
	fi, err := os.Stat(dataDir)
	if err != nil {
		return nil, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return nil, fmt.Errorf("cannot read the owner of %s", dataDir)
	}
	if os.Geteuid() != 0 {
		if int(st.Uid) != os.Geteuid() {
			return nil, fmt.Errorf("%s belongs to uid %d, not to the current user (uid %d); PostgreSQL only runs as the owner of its data directory", dataDir, st.Uid, os.Geteuid())
		}
		return &account{name: "current user", uid: st.Uid, gid: uint32(os.Getegid())}, nil
	}
	if st.Uid == 0 {
		return nil, fmt.Errorf("%s belongs to root, and PostgreSQL refuses to run as root", dataDir)
	}
	a := &account{name: "uid " + strconv.Itoa(int(st.Uid)), uid: st.Uid, gid: st.Gid, switchTo: true}
	if u, err := user.LookupId(strconv.Itoa(int(st.Uid))); err == nil {
		if b, err := accountFrom(u); err == nil {
			a = b
		}
	}
	return a, nil
}

func accountFrom(u *user.User) (*account, error) {
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, err
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, err
	}
	if uid == 0 {
		return nil, fmt.Errorf("user %s is root", u.Username)
	}
	return &account{name: u.Username, uid: uint32(uid), gid: uint32(gid), switchTo: os.Geteuid() == 0}, nil
}

// chown hands a directory this process created to the account, so that
// the server can write there when we created it as root.
func (a *account) chown(path string) error {
	if !a.switchTo {
		return nil
	}
	return os.Chown(path, int(a.uid), int(a.gid))
}

// traversableBy returns nil if the account can reach path, that is search
// every directory from / down to path. Only the owner, group and other
// bits count: the programs run with the account's primary group only, and
// ACLs are too rare on dev machines to justify the complexity.
func (a *account) traversableBy(path string) error {
	if !a.switchTo {
		return nil // our own directories; the caller will see real errors
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	for dir := abs; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("cannot read the permissions of %s", dir)
		}
		var bit os.FileMode
		switch {
		case st.Uid == a.uid:
			bit = 0o100
		case st.Gid == a.gid:
			bit = 0o010
		default:
			bit = 0o001
		}
		if fi.Mode().Perm()&bit == 0 {
			return fmt.Errorf("user %s cannot enter %s (mode %#o, owner uid %d)", a.name, dir, fi.Mode().Perm(), st.Uid)
		}
		if parent := filepath.Dir(dir); parent == dir {
			return nil
		}
	}
}
