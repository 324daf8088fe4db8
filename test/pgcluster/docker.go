package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/testcontainers/testcontainers-go"
	tcpostgres "github.com/testcontainers/testcontainers-go/modules/postgres"
)

// containerImage is the image of throwaway containers. Alpine keeps the
// first pull small.
const containerImage = "postgres:16-alpine"

// dockerProbeTimeout bounds the engine probe: a machine without a working
// engine must fall through to the server binaries quickly, never hang.
const dockerProbeTimeout = 2 * time.Second

// dockerAvailable reports whether a Docker engine answers, and why (not).
//
// It first looks for any sign of an engine without touching the network
// (DOCKER_HOST, a testcontainers properties file, a known socket), because
// testcontainers' own discovery is comparatively slow and a `docker` CLI on
// PATH says nothing about a running engine. Only then does it ask
// testcontainers, whose discovery honours the same settings the container
// start will use, to reach the engine within dockerProbeTimeout.
func dockerAvailable(ctx context.Context) (bool, string) {
	hint := dockerHint()
	if hint == "" {
		return false, "DOCKER_HOST is unset and no Docker socket or ~/.testcontainers.properties was found"
	}

	ctx, cancel := context.WithTimeout(ctx, dockerProbeTimeout)
	defer cancel()
	res := make(chan error, 1)
	// testcontainers' provider discovery runs on context.Background
	// internally, so run it aside and stop waiting at the deadline.
	go func() {
		defer func() {
			if r := recover(); r != nil { // testcontainers panics on some discovery failures
				res <- fmt.Errorf("panic: %v", r)
			}
		}()
		p, err := testcontainers.ProviderDefault.GetProvider()
		if err != nil {
			res <- err
			return
		}
		res <- p.Health(ctx) // Health closes the provider
	}()
	select {
	case err := <-res:
		if err != nil {
			return false, fmt.Sprintf("%s, but the engine did not answer: %v", hint, err)
		}
		return true, hint
	case <-ctx.Done():
		return false, fmt.Sprintf("%s, but the engine did not answer within %s", hint, dockerProbeTimeout)
	}
}

// dockerHint names the first sign of a Docker engine, or returns "".
func dockerHint() string {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		return "DOCKER_HOST=" + h
	}
	home, _ := os.UserHomeDir()
	if home != "" {
		if _, err := os.Stat(filepath.Join(home, ".testcontainers.properties")); err == nil {
			return "~/.testcontainers.properties exists"
		}
	}
	sockets := []string{"/var/run/docker.sock", "/run/docker.sock"}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		sockets = append(sockets, filepath.Join(d, "docker.sock"))
	}
	sockets = append(sockets, filepath.Join("/run/user", strconv.Itoa(os.Getuid()), "docker.sock"))
	if home != "" {
		sockets = append(sockets,
			filepath.Join(home, ".docker", "run", "docker.sock"),
			filepath.Join(home, ".docker", "desktop", "docker.sock"),
		)
	}
	for _, s := range sockets {
		if fi, err := os.Stat(s); err == nil && fi.Mode()&os.ModeSocket != 0 {
			return "socket " + s
		}
	}
	return ""
}

// startContainer runs a throwaway PostgreSQL container. The password is
// fixed and public: the container only lives for one test run.
func startContainer(ctx context.Context, opts Options) (*Server, error) {
	begin := time.Now()
	ctr, err := tcpostgres.Run(ctx, containerImage,
		tcpostgres.WithDatabase("postgres"),
		tcpostgres.WithUsername("postgres"),
		tcpostgres.WithPassword("postgres"),
		tcpostgres.BasicWaitStrategies(),
	)
	if err != nil {
		if ctr != nil {
			err = errors.Join(err, testcontainers.TerminateContainer(ctr))
		}
		return nil, fmt.Errorf("start %s container: %w", containerImage, err)
	}
	terminate := func() error { return testcontainers.TerminateContainer(ctr) }

	url, err := ctr.ConnectionString(ctx, "sslmode=disable")
	if err == nil {
		err = waitReady(ctx, url, "")
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("container %s: %w", containerImage, err), terminate())
	}
	opts.logf("pgcluster: container %s ready at %s in %s", containerImage, redact(url), time.Since(begin).Round(time.Millisecond))
	return &Server{URL: url, stop: terminate}, nil
}
