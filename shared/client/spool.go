package client

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	json "github.com/segmentio/encoding/json"
)

// spool keeps batches of events on disk until the store has acknowledged them: one file per
// batch, a JSON array of events (the REST batch body). A file is written under a temporary
// name, synced, renamed into place and the directory synced, so after a crash a batch file is
// whole or absent; it is deleted only after every event in it was acknowledged or refused.
type spool struct {
	dir string
	max int64
	// lock holds the directory for this process (flock where the OS has it): two emitters
	// replaying one spool would send every event twice.
	lock *os.File

	mu     sync.Mutex
	size   int64
	files  map[string]int64 // name → size, of complete batch files
	taken  map[string]bool  // files being replayed
	serial int
	ready  chan struct{} // cap 1: a file was added
}

const (
	spoolSuffix = ".batch.json"
	spoolTemp   = ".tmp-"
)

// errSpoolFull says a batch would make the spool larger than its bound.
var errSpoolFull = errors.New("the spool is full")

func openSpool(dir string, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s := &spool{dir: dir, max: maxBytes, lock: lock, files: map[string]int64{}, taken: map[string]bool{}, ready: make(chan struct{}, 1)}
	entries, err := os.ReadDir(dir)
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, e := range entries {
		switch name := e.Name(); {
		case strings.HasPrefix(name, spoolTemp):
			// A batch that was being written when the process died: its events were never
			// reported as spooled, and the file may be torn.
			_ = os.Remove(filepath.Join(dir, name))
		case strings.HasSuffix(name, spoolSuffix):
			info, err := e.Info()
			if err != nil {
				continue
			}
			s.files[name] = info.Size()
			s.size += info.Size()
		}
	}
	if len(s.files) > 0 {
		s.ready <- struct{}{}
	}
	return s, nil
}

func (s *spool) close() error { return s.lock.Close() }

// write stores a batch durably, or fails without leaving a file behind.
func (s *spool) write(batch []pending) error {
	n := int64(2 + len(batch))
	for _, p := range batch {
		n += int64(len(p.raw))
	}
	s.mu.Lock()
	if s.size+n > s.max {
		s.mu.Unlock()
		return errSpoolFull
	}
	s.size += n // reserved, so concurrent writers cannot overrun the bound together
	s.serial++
	// Names sort by time, so the oldest batch is replayed first.
	name := fmt.Sprintf("%020d-%06d%s", time.Now().UnixNano(), s.serial%1_000_000, spoolSuffix)
	s.mu.Unlock()

	if err := s.writeFile(name, batch); err != nil {
		s.mu.Lock()
		s.size -= n
		s.mu.Unlock()
		return fmt.Errorf("spool: %w", err)
	}
	s.mu.Lock()
	s.files[name] = n
	s.mu.Unlock()
	select {
	case s.ready <- struct{}{}:
	default:
	}
	return nil
}

func (s *spool) writeFile(name string, batch []pending) error {
	tmp := filepath.Join(s.dir, spoolTemp+name)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	body := make([]byte, 0, 2+len(batch)*(len(batch[0].raw)+1))
	body = append(body, '[')
	for i, p := range batch {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, p.raw...)
	}
	body = append(body, ']')
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(s.dir, name))
	}
	if err == nil {
		err = syncDir(s.dir)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// next takes the oldest batch file not being replayed.
func (s *spool) next() (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var oldest string
	for name := range s.files {
		if !s.taken[name] && (oldest == "" || name < oldest) {
			oldest = name
		}
	}
	if oldest == "" {
		return "", false
	}
	s.taken[oldest] = true
	return oldest, true
}

// release gives back a file taken by next without removing it.
func (s *spool) release(name string) {
	s.mu.Lock()
	delete(s.taken, name)
	s.mu.Unlock()
}

// read returns the events of a batch file.
func (s *spool) read(name string) ([]pending, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, name))
	if err != nil {
		return nil, err
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(b, &raws); err != nil {
		return nil, fmt.Errorf("spool file %s is not a JSON array of events: %w", name, err)
	}
	out := make([]pending, len(raws))
	for i, raw := range raws {
		var id struct {
			EventID string `json:"event_id"`
		}
		_ = json.Unmarshal(raw, &id) // an event without an id is sent, and refused, as it is
		out[i] = pending{id: id.EventID, raw: slices.Clone([]byte(raw))}
	}
	return out, nil
}

// remove deletes a batch file once every event in it is acknowledged or refused.
func (s *spool) remove(name string) error {
	if err := os.Remove(filepath.Join(s.dir, name)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	s.mu.Lock()
	s.size -= s.files[name]
	delete(s.files, name)
	delete(s.taken, name)
	s.mu.Unlock()
	return syncDir(s.dir)
}

// quarantine moves aside a batch file that cannot be read, so it is neither replayed again
// nor lost.
func (s *spool) quarantine(name string) {
	_ = os.Rename(filepath.Join(s.dir, name), filepath.Join(s.dir, name+".bad"))
	s.mu.Lock()
	s.size -= s.files[name]
	delete(s.files, name)
	delete(s.taken, name)
	s.mu.Unlock()
}

// state returns the number of batch files and their bytes.
func (s *spool) state() (files int, bytes int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.files), s.size
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
