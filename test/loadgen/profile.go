package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/auditstore/auditstore/test/fnproc"
)

// profileWarmup is how long a scenario runs before its profiles start, so they show the steady
// state, not connection set-up and the first partitions.
const profileWarmup = time.Second

// profileEnv returns the write function's environment for serving its profiles on a free
// loopback port (PPROF_ADDR), and that address.
func profileEnv() ([]string, string, error) {
	port, err := fnproc.FreePort()
	if err != nil {
		return nil, "", err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	return []string{"PPROF_ADDR=" + addr}, addr, nil
}

// profiler takes a CPU profile and an allocation profile (the delta over the same window) of
// the write function while a scenario runs, into dir/<scenario>-cpu.pprof and
// dir/<scenario>-allocs.pprof. It starts after profileWarmup and lasts window.
type profiler struct {
	wg   sync.WaitGroup
	errs [2]error
}

func startProfiles(ctx context.Context, addr, dir, scenario string, window time.Duration) *profiler {
	p := &profiler{}
	secs := max(1, int(window/time.Second))
	for i, kind := range []string{"cpu", "allocs"} {
		path := "/debug/pprof/profile"
		if kind == "allocs" {
			path = "/debug/pprof/allocs"
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			select {
			case <-time.After(profileWarmup):
			case <-ctx.Done():
				return
			}
			p.errs[i] = fetchProfile(ctx, fmt.Sprintf("http://%s%s?seconds=%d", addr, path, secs),
				filepath.Join(dir, fmt.Sprintf("%s-%s.pprof", scenario, kind)))
		}()
	}
	return p
}

// wait waits for both profiles and reports what failed.
func (p *profiler) wait() error {
	p.wg.Wait()
	for _, err := range p.errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func fetchProfile(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profile %s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
