package web

import (
	"io"
	"sync"
)

// maxPendingLog bounds the log bytes waiting for the writer goroutine; beyond it a logger
// writes in line, which slows the loggers down instead of growing memory.
const maxPendingLog = 1 << 20

// lineWriter passes log lines to a goroutine of its own, which writes whatever gathered while
// it wrote the last batch in one system call. A write syscall per request log line was a few
// percent of the write function's CPU under load; batching adds no delay when idle (a line
// goes out as soon as the goroutine runs) and keeps lines in order. Close writes what is left.
type lineWriter struct {
	out  io.Writer
	wake chan struct{}
	done chan struct{}

	mu     sync.Mutex // guards buf and closed; taken before outMu
	buf    []byte
	closed bool
	outMu  sync.Mutex // serializes writes to out in the order the lines were taken
}

func newLineWriter(out io.Writer) *lineWriter {
	w := &lineWriter{out: out, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go w.loop()
	return w
}

// Write queues p (a whole line: slog writes each record in one call).
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	if w.closed || len(w.buf)+len(p) > maxPendingLog {
		pending := w.buf
		w.buf = nil
		w.outMu.Lock() // before letting go of mu: the lines stay in order
		w.mu.Unlock()
		defer w.outMu.Unlock()
		if len(pending) > 0 {
			if _, err := w.out.Write(pending); err != nil {
				return 0, err
			}
		}
		return w.out.Write(p)
	}
	w.buf = append(w.buf, p...)
	select { // under mu: Close closes wake under it too
	case w.wake <- struct{}{}:
	default: // already woken: the goroutine takes this line with the others
	}
	w.mu.Unlock()
	return len(p), nil
}

func (w *lineWriter) loop() {
	defer close(w.done)
	var spare []byte
	for range w.wake {
		w.mu.Lock()
		batch := w.buf
		w.buf = spare[:0]
		w.outMu.Lock()
		w.mu.Unlock()
		if len(batch) > 0 {
			_, _ = w.out.Write(batch) // nowhere to report a failing log
		}
		w.outMu.Unlock()
		if cap(batch) <= 64<<10 {
			spare = batch
		} else {
			spare = nil // do not keep a burst's buffer
		}
	}
}

// Close writes what is queued; later lines are written in line.
func (w *lineWriter) Close() {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return
	}
	w.closed = true
	close(w.wake)
	w.mu.Unlock()
	<-w.done
	w.mu.Lock()
	w.outMu.Lock()
	pending := w.buf
	w.buf = nil
	w.mu.Unlock()
	if len(pending) > 0 {
		_, _ = w.out.Write(pending)
	}
	w.outMu.Unlock()
}
