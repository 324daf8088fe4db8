package ui_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/auditstore/auditstore/functions/query"
	"github.com/auditstore/auditstore/shared/audit"
	"github.com/auditstore/auditstore/shared/auth"
	"github.com/auditstore/auditstore/shared/erasure"
	"github.com/auditstore/auditstore/shared/integrity"
	"github.com/auditstore/auditstore/shared/ledger"
	"github.com/auditstore/auditstore/shared/lifecycle"
	"github.com/auditstore/auditstore/shared/store"
	"github.com/auditstore/auditstore/test/chromium"
	"github.com/auditstore/auditstore/test/pgtest"
	"github.com/chromedp/chromedp"
	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// TestTimeline_ErasedAndWithheld: an erased member is shown as a marker where its value would
// be (the table's service, the detail's fields, a list for event_data's members), whose
// tooltip names the erasure (when, by whom, why); a sensitive event's withheld members are
// shown as markers too; an erased event's proof still verifies in the browser.
func TestTimeline_ErasedAndWithheld(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	require.NoError(t, os.WriteFile(path, []byte("tokens:\n  - {principal: auditor, roles: [reader], token: reader-token}\n  - {principal: dpo, roles: [admin], token: admin-token}\n"), 0o600))
	az, err := auth.NewStatic(path)
	require.NoError(t, err)
	st := store.New(pgtest.NewPool(t))
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	require.NoError(t, err)
	srv := serveStore(t, st, nil, query.WithAuthorizer(az, nil), query.WithIntegrity(st, []integrity.PublicKey{pub}))
	corr := "rr-erased-" + uuid.NewString()[:8]
	steps := slices.Clone(remediation[:4])
	steps[2].mutate = func(in *audit.Input) {
		sensitive, msg := true, "token leaked in step output"
		in.IsSensitive, in.ErrorMessage = &sensitive, &msg
	}
	events := seed(t, st, corr, time.Now().UTC().Add(-time.Hour), steps)
	_, err = (&ledger.Sealer{Store: st, Signer: integrity.NewSigner(priv)}).SealAll(context.Background())
	require.NoError(t, err)
	svc := lifecycle.NewService(st, lifecycle.Config{}, audit.DefaultRetentionClasses, nil)
	res, err := erasure.Erase(context.Background(), st, erasure.Request{EventIDs: []uuid.UUID{events[1].EventID},
		Members: []string{"/actor_id", "/event_data/payload/step"}, Reason: "GDPR art. 17 request 2026-311", By: "dpo",
		Record: func(payload map[string]any) (audit.Event, error) {
			id := fmt.Sprint(payload["erasure_id"])
			return svc.Event("auditstore.erasure.performed", id, "Erasure", id, payload, "dpo")
		}})
	require.NoError(t, err)

	tab := chromium.New(t)
	open(t, tab, srv.URL+"/ui/")
	useToken := func(token string) {
		t.Helper()
		require.NoError(t, chromedp.Do(tab.Ctx,
			chromedp.SendKeys(chromedp.ID("token"), token),
			chromedp.Evaluate[chromedp.Void](`document.getElementById('token-form').requestSubmit()`)))
	}
	useToken("admin-token")
	open(t, tab, srv.URL+"/ui/?correlation_id="+corr)
	waitFor(t, tab, `document.body.dataset.state === 'ready' && document.body.dataset.integrity === 'done'`)
	row := fmt.Sprintf(`#rows .row[data-event-id="%s"]`, events[1].EventID)
	require.Equal(t, "[erased]", eval[string](t, tab, fmt.Sprintf(`document.querySelector('%s .service .marker.erased')?.textContent ?? ''`, row)))
	require.Equal(t, "", eval[string](t, tab, fmt.Sprintf(`document.querySelector('#rows .row[data-event-id="%s"] .service .marker')?.textContent ?? ''`, events[0].EventID)), "an event nothing was erased of has no marker")

	click(t, tab, row)
	waitFor(t, tab, fmt.Sprintf(`document.getElementById('detail').dataset.eventId === %q && document.getElementById('detail').dataset.erasures === 'done' && !document.getElementById('detail-integrity').textContent.includes('checking')`, events[1].EventID))
	markers := eval[[]map[string]string](t, tab, `[...document.querySelectorAll('#detail .marker.erased')].map(n => ({pointer: n.dataset.pointer, text: n.textContent, title: n.title, erasure: n.dataset.erasureId ?? ''}))`)
	require.Len(t, markers, 2)
	require.Equal(t, "/actor_id", markers[0]["pointer"])
	require.Equal(t, "[erased]", markers[0]["text"])
	require.Equal(t, res.ErasureID.String(), markers[0]["erasure"])
	require.Regexp(t, fmt.Sprintf(`^erased \d{4}-\d\d-\d\dT[0-9:.]+Z by dpo \(erasure %s\): GDPR art\. 17 request 2026-311$`, res.ErasureID), markers[0]["title"])
	require.Equal(t, "/event_data/payload/step", markers[1]["pointer"])
	require.Equal(t, "/event_data/payload/step", markers[1]["text"], "event_data's erased members are listed by name")
	require.Equal(t, markers[0]["title"], markers[1]["title"])
	require.Contains(t, eval[string](t, tab, `document.getElementById('detail-erased').textContent`), "Erased from event_data")
	require.NotContains(t, eval[string](t, tab, `document.getElementById('detail-data').textContent`), `"step"`)
	require.Contains(t, eval[string](t, tab, `document.getElementById('detail-integrity').textContent`), "inclusion verified", "an erased event still verifies")
	require.Equal(t, "rgb(142, 31, 20)", eval[string](t, tab, `getComputedStyle(document.querySelector('#detail .marker.erased')).color`), "the marker is styled")

	shot, err := chromedp.Run(tab.Ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	artifact(t, "timeline-erased.png", shot)

	// A reader without the right to read sensitive events: the sensitive event's withheld
	// members are markers.
	require.NoError(t, chromedp.Do(tab.Ctx, chromedp.Evaluate[chromedp.Void](`document.getElementById('token-forget').click()`)))
	useToken("reader-token")
	open(t, tab, srv.URL+"/ui/?correlation_id="+corr)
	waitFor(t, tab, `document.body.dataset.state === 'ready'`)
	click(t, tab, fmt.Sprintf(`#rows .row[data-event-id="%s"]`, events[2].EventID))
	waitFor(t, tab, fmt.Sprintf(`document.getElementById('detail').dataset.eventId === %q`, events[2].EventID))
	withheld := eval[[]string](t, tab, `[...document.querySelectorAll('#detail .marker.withheld')].map(n => n.dataset.field + ' ' + n.textContent)`)
	require.ElementsMatch(t, []string{"error_message [withheld]", "resource_name [withheld]", "event_data [withheld]"}, withheld)
	require.NotContains(t, eval[string](t, tab, `document.getElementById('detail').textContent`), "token leaked")
	shot, err = chromedp.Run(tab.Ctx, chromedp.FullScreenshot(100))
	require.NoError(t, err)
	artifact(t, "timeline-withheld.png", shot)
	require.Empty(t, tab.Problems())
}
