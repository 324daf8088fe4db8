package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/auditstore/auditstore/test/fnproc"
)

// buildWrite builds the write function into dir and returns the binary's path.
func buildWrite(ctx context.Context, dir string) (string, error) {
	return fnproc.Build(ctx, dir, "./functions/write/cmd", "write")
}

// function is a running write function.
type function struct {
	*fnproc.Proc
	cmd *exec.Cmd
	url string
}

func (f *function) stop() error { return f.Stop() }

// startWrite starts bin on a free loopback port with DATABASE_URL set to databaseURL and the
// rest of the environment inherited (WRITE_MAX_CONNS, WRITE_COMMITTERS, ...), and waits until
// /health/readiness answers 200. The load generator measures the write path itself: no
// identity checks, and no rate limit for its one (anonymous) principal, unless the environment
// says otherwise.
func startWrite(ctx context.Context, bin, databaseURL, logPath string, env ...string) (*function, error) {
	p, err := fnproc.Start(ctx, "write", bin,
		append([]string{"AUTH_MODE=none", "RATE_LIMIT_EVENTS_PER_SEC=1000000000", "RATE_LIMIT_BURST=1000000000"}, env...),
		[]string{"DATABASE_URL=" + databaseURL}, logPath)
	if err != nil {
		return nil, err
	}
	return &function{Proc: p, cmd: p.Cmd, url: p.URL}, nil
}

// peakRSS returns a process's peak resident set size (VmHWM) in bytes.
func peakRSS(pid int) (int64, error) { return fnproc.ProcStatus(pid, "VmHWM") }

func tail(path string, n int) string { return fnproc.Tail(path, n) }

// clockTick is USER_HZ, the unit of CPU times in /proc/<pid>/stat: 100 on every Linux
// architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuTime returns the user+system CPU time a process has used so far.
func cpuTime(pid int) (time.Duration, string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, "", err
	}
	// The command name is in parentheses and may hold spaces; fields count from after it.
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < 0 {
		return 0, "", errors.New("malformed /proc/<pid>/stat")
	}
	fields := strings.Fields(string(b[end+1:]))
	if len(fields) < 13 {
		return 0, "", errors.New("malformed /proc/<pid>/stat")
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64) // field 14 of proc(5)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64) // field 15
	if err := errors.Join(err1, err2); err != nil {
		return 0, "", err
	}
	return time.Duration(utime+stime) * clockTick, string(b[open+1 : end]), nil
}

// postgresCPU returns the CPU time used so far by every process named postgres on this
// machine, by pid.
func postgresCPU() map[int]time.Duration {
	out := map[int]time.Duration{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return out
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if t, comm, err := cpuTime(pid); err == nil && comm == "postgres" {
			out[pid] = t
		}
	}
	return out
}

// machineBusy returns the CPU time all cores of the machine have spent busy so far (user,
// nice, system, irq, softirq, steal of /proc/stat).
func machineBusy() time.Duration {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		ticks += v
	}
	return time.Duration(ticks) * clockTick
}

// selfCPU returns the CPU time this process has used so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuMeter measures who used the machine's CPU during one measurement.
type cpuMeter struct {
	fnPid         int // 0: no function
	start         time.Time
	fn, gen, busy time.Duration
	pg            map[int]time.Duration
	io            fnproc.IOStall
}

// usage is the CPU time each party used during a measurement.
type usage struct {
	wall, fn, pg, gen time.Duration
	// other is what the rest of the machine used: other processes, other databases' backends.
	other time.Duration
	// pgKnown: the server's processes were found on this machine.
	pgKnown bool
	// ioStall is the share of the time some task waited for the disk (-1: unknown).
	ioStall float64
}

func startMeter(fnPid int) *cpuMeter {
	m := &cpuMeter{fnPid: fnPid, start: time.Now(), pg: postgresCPU(), gen: selfCPU(), busy: machineBusy(), io: fnproc.StartIOStall()}
	if fnPid != 0 {
		m.fn, _, _ = cpuTime(fnPid)
	}
	return m
}

// stop ends the measurement; pgPids are the server processes that worked for it (a process
// started meanwhile counts from zero).
func (m *cpuMeter) stop(pgPids []int) usage {
	u := usage{wall: time.Since(m.start), gen: selfCPU() - m.gen, ioStall: m.io.Share()}
	if m.fnPid != 0 {
		fn, _, _ := cpuTime(m.fnPid)
		u.fn = fn - m.fn
	}
	for _, pid := range pgPids {
		if t, comm, err := cpuTime(pid); err == nil && comm == "postgres" {
			u.pg += t - m.pg[pid]
			u.pgKnown = true
		}
	}
	u.other = max(0, machineBusy()-m.busy-u.fn-u.pg-u.gen)
	return u
}
