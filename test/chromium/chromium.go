// Package chromium runs a headless Chromium for the browser tests, through chromedp (the
// DevTools protocol from Go: no Node.js toolchain in the build). Each test gets a browser of
// its own with a fresh profile, so nothing (storage, cache) leaks from one test to another.
package chromium

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// names are the binaries tried, Debian's package first.
var names = []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"}

// Find returns the Chromium to run: $CHROMIUM when set, else the first of the usual names on
// $PATH.
func Find() (string, error) {
	if p := os.Getenv("CHROMIUM"); p != "" {
		return exec.LookPath(p)
	}
	for _, n := range names {
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", errors.New("no Chromium found (tried $CHROMIUM, " + strings.Join(names, ", ") +
		"): install Debian's chromium package (apt-get install -y chromium)")
}

// Tab is one page in a headless Chromium of its own.
type Tab struct {
	// Ctx runs chromedp actions in the tab.
	Ctx context.Context

	mu       sync.Mutex
	problems []string
}

// running bounds the browsers of one test process: each takes a few hundred MB and a core
// while it loads, and parallel tests on a small machine would otherwise time out.
var running = make(chan struct{}, 2)

// New starts a headless Chromium for tb and returns its first tab; the browser is closed when
// the test ends. Without Chromium the test is skipped, except under CI (CI set), where a
// missing browser is a failure: CI must install it. At most two browsers run at once; New
// waits for a turn.
func New(tb testing.TB) *Tab {
	tb.Helper()
	path, err := Find()
	if err != nil {
		if os.Getenv("CI") != "" {
			tb.Fatalf("chromium: %v", err)
		}
		tb.Skipf("browser test skipped: %v", err)
	}
	running <- struct{}{}
	tb.Cleanup(func() { <-running })
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox, // tests run as root in containers, where the sandbox cannot start
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), // containers have a small /dev/shm
		chromedp.UserDataDir(tb.TempDir()),
		chromedp.WindowSize(1400, 900),
	}
	// The browser lives as long as the context of its first Run: the test's, bounded.
	ctx, cancelTimeout := context.WithTimeout(context.Background(), 3*time.Minute)
	actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
	t := &Tab{}
	tctx, cancelTab := chromedp.NewContext(actx, chromedp.WithListener(t.listen))
	t.Ctx = tctx
	tb.Cleanup(func() {
		cancelTab()
		cancelAlloc()
		cancelTimeout()
	})
	if _, err := chromedp.Call(tctx, log.Enable, cdp.Empty{}); err != nil {
		tb.Fatalf("chromium: start %s: %v", path, err)
	}
	return t
}

// listen keeps what went wrong in the page. It runs on the tab's reader: it must be quick.
func (t *Tab) listen(ev any) {
	var p string
	switch ev := ev.(type) {
	case *runtime.EventExceptionThrown:
		d := ev.ExceptionDetails
		p = fmt.Sprintf("uncaught exception: %s", d.Text)
		if d.Exception != nil {
			p += " " + d.Exception.Description
		}
		p += fmt.Sprintf(" at %s:%d", d.URL, d.LineNumber+1)
	case *runtime.EventConsoleAPICalled:
		if ev.Type != runtime.ConsoleAPICalledTypeError && ev.Type != runtime.ConsoleAPICalledTypeAssert {
			return
		}
		var args []string
		for _, a := range ev.Args {
			args = append(args, strings.TrimSpace(string(a.Value)+" "+a.Description))
		}
		p = "console." + string(ev.Type) + ": " + strings.Join(args, " ")
	case *log.EventEntryAdded:
		// A failed request (a 401, a 404) is how the page learns things; the tests look at
		// what the page made of it. Everything else logged as an error is a problem, such as
		// a refusal by the Content-Security-Policy.
		if ev.Entry.Level != log.EntryLevelError || ev.Entry.Source == log.EntrySourceNetwork {
			return
		}
		p = fmt.Sprintf("%s error: %s %s", ev.Entry.Source, ev.Entry.Text, ev.Entry.URL)
	default:
		return
	}
	t.mu.Lock()
	t.problems = append(t.problems, p)
	t.mu.Unlock()
}

// Problems returns what went wrong in the page so far: uncaught exceptions, console errors,
// and errors the browser logged other than failed requests (a refusal by the
// Content-Security-Policy, a script that did not load).
func (t *Tab) Problems() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.problems...)
}

// Download runs trigger, which makes the page download a file, and returns the file's
// suggested name and its content.
func (t *Tab) Download(tb testing.TB, trigger chromedp.Action[chromedp.Void]) (string, []byte) {
	tb.Helper()
	dir := tb.TempDir()
	begins := chromedp.Events(t.Ctx, browser.DownloadWillBegin)
	progress := chromedp.Events(t.Ctx, browser.DownloadProgress)
	enabled := true
	if _, err := chromedp.Call(t.Ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &enabled,
	}); err != nil {
		tb.Fatalf("chromium: allow downloads: %v", err)
	}
	if err := chromedp.Do(t.Ctx, trigger); err != nil {
		tb.Fatalf("chromium: start download: %v", err)
	}
	var name, guid string
	for ev, err := range begins {
		if err != nil {
			tb.Fatalf("chromium: no download began: %v", err)
		}
		name, guid = ev.SuggestedFilename, ev.GUID
		break
	}
	for ev, err := range progress {
		if err != nil {
			tb.Fatalf("chromium: download %s did not complete: %v", name, err)
		}
		if ev.GUID != guid {
			continue
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			tb.Fatalf("chromium: download %s was canceled", name)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			break
		}
	}
	body, err := os.ReadFile(filepath.Join(dir, guid))
	if err != nil {
		tb.Fatalf("chromium: read download %s: %v", name, err)
	}
	return name, body
}
