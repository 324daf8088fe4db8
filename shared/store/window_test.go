package store

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestWindows(t *testing.T) {
	t.Parallel()
	day := 24 * time.Hour
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	month := func(y int, m time.Month) leaf {
		return leaf{name: "x", month: time.Date(y, m, 1, 0, 0, 0, 0, time.UTC)}
	}
	leaves := []leaf{month(2026, 8), month(2026, 11), month(2027, 2)} // the last one made ahead
	at := func(d time.Duration) *time.Time { t := now.Add(d); return &t }
	render := func(ws []window) [][2]string {
		out := make([][2]string, len(ws))
		for i, w := range ws {
			out[i] = [2]string{"-inf", "+inf"}
			if w.lo != nil {
				out[i][0] = w.lo.Format(time.DateTime)
			}
			if w.hi != nil {
				out[i][1] = w.hi.Format(time.DateTime)
			}
		}
		return out
	}

	// Newest first from now (the leaf made ahead holds nothing newer in sight but stays in the
	// open first window), growing 4x, the last one open below.
	desc := QueryParams{Order: Descending}
	require.Equal(t, [][2]string{
		{"2026-11-25 12:00:00", "+inf"},
		{"2026-11-22 12:00:00", "2026-11-25 12:00:00"},
		{"2026-11-10 12:00:00", "2026-11-22 12:00:00"},
		{"2026-09-23 12:00:00", "2026-11-10 12:00:00"},
		{"-inf", "2026-09-23 12:00:00"},
	}, render(desc.windows(leaves, nil, nil, firstWindow, now)))

	// Bounds are kept at both ends; the anchor is the upper one.
	require.Equal(t, [][2]string{
		{"2026-11-18 12:00:00", "2026-11-19 12:00:00"},
		{"2026-11-15 12:00:00", "2026-11-18 12:00:00"},
		{"2026-11-12 12:00:00", "2026-11-15 12:00:00"},
	}, render(desc.windows(leaves, at(-14*day), at(-7*day), firstWindow, now)))

	// Oldest first from the oldest leaf, the last one open above.
	asc := QueryParams{Order: Ascending}
	ws := render(asc.windows(leaves, nil, nil, firstWindow, now))
	require.Equal(t, [2]string{"-inf", "2026-08-02 00:00:00"}, ws[0])
	require.Equal(t, [2]string{"2026-08-02 00:00:00", "2026-08-05 00:00:00"}, ws[1])
	require.Equal(t, "+inf", ws[len(ws)-1][1])
	require.Len(t, ws, 5)

	// Without a leaf of known month, one window: the bounds.
	require.Equal(t, [][2]string{{"2026-11-25 12:00:00", "+inf"}}, render(desc.windows([]leaf{{name: "custom"}}, at(-day), nil, firstWindow, now)))
}

func TestJoinWindows(t *testing.T) {
	t.Parallel()
	a, b, c := time.Unix(100, 0), time.Unix(200, 0), time.Unix(300, 0)
	require.Equal(t, window{&a, &c}, joinWindows(window{&a, &b}, window{&b, &c}), "ascending")
	require.Equal(t, window{&a, &c}, joinWindows(window{&b, &c}, window{&a, &b}), "descending")
	require.Equal(t, window{nil, nil}, joinWindows(window{&b, nil}, window{nil, &b}), "descending, open ends")
	require.Equal(t, window{nil, nil}, joinWindows(window{nil, &b}, window{&b, nil}), "ascending, open ends")
}
