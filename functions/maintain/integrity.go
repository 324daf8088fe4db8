package maintain

import (
	"context"
	"log/slog"
	"time"
)

// firstVerifyAfter is when a process verifies first: soon, so the metrics the alerts watch
// are set after a start, and not at once, so a restart loop does not verify over and over.
const firstVerifyAfter = 10 * time.Minute

// VerifyEvery verifies the store against the integrity log every interval until ctx ends, the
// first time min(interval, 10 minutes) after the start. Problems are logged and set the
// audit_integrity_* metrics that the alerts watch.
func (s *Service) VerifyEvery(ctx context.Context, interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTimer(min(interval, firstVerifyAfter))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			t.Reset(interval)
		}
		rep, err := s.Verify(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			slog.Error("integrity verification could not run", "error", err)
		case err == nil && !rep.OK:
			for i, p := range rep.Problems {
				if i == 20 {
					break
				}
				slog.Error("integrity problem", "kind", p.Kind, "detail", p.Detail)
			}
			slog.Error("integrity verification found problems", "problems", rep.ProblemCount, "events", rep.Events)
		case err == nil:
			slog.Info("integrity verified", "events", rep.Events, "leaves", rep.Leaves, "duration", rep.Duration)
		}
	}
}
