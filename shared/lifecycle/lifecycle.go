// Package lifecycle decides what the maintenance job does to partitions: which months to make
// ahead or fill in, which have expired, and when a partition may go; shared/store executes. It
// takes the time as an argument, so tests can run years in seconds. Its Service is the
// maintenance service every runner shares (the maintain function, the standalone process, the
// jobs): runs, retention policies and legal holds, each recorded as an audit event, and the
// integrity log's Keeper.
package lifecycle

import (
	"fmt"
	"slices"
	"time"
)

// Month is a calendar month in UTC.
type Month struct {
	Year  int
	Month time.Month
}

// MonthOf returns the month t falls in (UTC).
func MonthOf(t time.Time) Month {
	t = t.UTC()
	return Month{t.Year(), t.Month()}
}

// Start is the first instant of the month.
func (m Month) Start() time.Time { return time.Date(m.Year, m.Month, 1, 0, 0, 0, 0, time.UTC) }

// End is the first instant of the next month.
func (m Month) End() time.Time { return m.Start().AddDate(0, 1, 0) }

// Add returns the month n months later (earlier for negative n).
func (m Month) Add(n int) Month { return MonthOf(m.Start().AddDate(0, n, 0)) }

// Before reports whether m comes before o.
func (m Month) Before(o Month) bool { return m.Start().Before(o.Start()) }

func (m Month) String() string { return fmt.Sprintf("%04d-%02d", m.Year, int(m.Month)) }

// Partition is one leaf: the events of one retention class (days) in one month.
type Partition struct {
	Class int
	Month Month
}

func (p Partition) String() string { return fmt.Sprintf("r%d/%s", p.Class, p.Month) }

// ExpiresAt is when every event of p is past its retention: the end of the month plus the
// class's days. Dropping p then deletes each event no earlier than its own expiry and at most a
// month after it (the earliest event of the month), as retention requires.
func (p Partition) ExpiresAt() time.Time {
	return p.Month.End().Add(time.Duration(p.Class) * 24 * time.Hour)
}

// Expired reports whether p may be dropped at now.
func (p Partition) Expired(now time.Time) bool { return !now.Before(p.ExpiresAt()) }

// Plan is what one maintenance run should do.
type Plan struct {
	// Create are the missing partitions, oldest first: for every class, every month from its
	// oldest unexpired partition (or the current month) to PremakeMonths ahead. Months older
	// than any partition are not made empty in advance (a class could need 84 of them); a late
	// event gets its month on demand from the write path.
	Create []Partition
	// Expired are existing partitions past retention, oldest first: each is archived (if
	// configured), cleared of events not under legal hold, and dropped when nothing held is
	// left in it.
	Expired []Partition
	// MonthsAhead is how many whole months after the current one have a partition in every
	// class once Create is done (the metric operators alert on).
	MonthsAhead int
}

// Policy are the settings a plan follows.
type Policy struct {
	// Classes are the retention classes (days).
	Classes []int
	// PremakeMonths is how many months after the current one must exist.
	PremakeMonths int
}

// PlanPartitions decides the run at now, given the partitions that exist.
func PlanPartitions(now time.Time, existing []Partition, pol Policy) Plan {
	have := map[Partition]bool{}
	for _, p := range existing {
		have[p] = true
	}
	current := MonthOf(now)
	last := current.Add(pol.PremakeMonths)
	var plan Plan
	for _, class := range pol.Classes {
		first := current
		for _, p := range existing {
			if p.Class == class && p.Month.Before(first) && !p.Expired(now) {
				first = p.Month
			}
		}
		for m := first; !last.Before(m); m = m.Add(1) {
			if p := (Partition{class, m}); !have[p] {
				plan.Create = append(plan.Create, p)
			}
		}
	}
	for _, p := range existing {
		if p.Expired(now) {
			plan.Expired = append(plan.Expired, p)
		}
	}
	slices.SortFunc(plan.Create, compare)
	slices.SortFunc(plan.Expired, compare)
	plan.MonthsAhead = pol.PremakeMonths
	return plan
}

// MonthsAhead counts the whole months after now's that have a partition in every class.
func MonthsAhead(now time.Time, existing []Partition, classes []int) int {
	have := map[Partition]bool{}
	for _, p := range existing {
		have[p] = true
	}
	n := 0
	for m := MonthOf(now).Add(1); ; m = m.Add(1) {
		for _, c := range classes {
			if !have[Partition{c, m}] {
				return n
			}
		}
		n++
	}
}

func compare(a, b Partition) int {
	if a.Month != b.Month {
		if a.Month.Before(b.Month) {
			return -1
		}
		return 1
	}
	return a.Class - b.Class
}
