package audit

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Retention bounds in days: 90 days to 7 years (README "Write API").
const (
	MinRetentionDays = 90
	MaxRetentionDays = 2557
)

// DefaultRetentionClasses are the stored retention periods, in days, when RETENTION_CLASSES is
// not set. Every event's retention is rounded up to one of them, so each class ages out as a
// whole and can be dropped by partition.
var DefaultRetentionClasses = []int{90, 180, 365, 730, 1095, 1825, 2557}

// ResolveRetention returns the retention class an event is stored with: its own retention_days
// or its category's policy, whichever is longer (an event may lengthen its policy, never
// shorten it), else the maximum; then rounded up to the next class, never shorter.
func ResolveRetention(own *int64, policy int, hasPolicy bool, classes []int) int {
	days := MaxRetentionDays
	switch {
	case own != nil && hasPolicy:
		days = max(int(*own), policy)
	case own != nil:
		days = int(*own)
	case hasPolicy:
		days = policy
	}
	return RoundRetention(days, classes)
}

// RoundRetention rounds days up to the smallest class that is at least as long. Days beyond
// every class get the longest class's value or days itself, whichever is longer, so retention
// is never shortened.
func RoundRetention(days int, classes []int) int {
	if len(classes) == 0 {
		classes = DefaultRetentionClasses
	}
	days = max(days, MinRetentionDays)
	for _, c := range classes {
		if c >= days {
			return c
		}
	}
	return days
}

// ParseRetentionClasses reads a RETENTION_CLASSES value ("90,180,365"): ascending, unique days,
// each between 90 and 2557, the last one 2557 so that every accepted retention has a class.
func ParseRetentionClasses(s string) ([]int, error) {
	var classes []int
	for _, part := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("retention class %q is not a whole number of days", part)
		}
		if n < MinRetentionDays || n > MaxRetentionDays {
			return nil, fmt.Errorf("retention class %d is not between %d and %d days", n, MinRetentionDays, MaxRetentionDays)
		}
		if len(classes) > 0 && n <= classes[len(classes)-1] {
			return nil, fmt.Errorf("retention classes must ascend: %d after %d", n, classes[len(classes)-1])
		}
		classes = append(classes, n)
	}
	if !slices.Contains(classes, MaxRetentionDays) {
		return nil, fmt.Errorf("retention classes must end with %d (7 years), the longest accepted retention", MaxRetentionDays)
	}
	return classes, nil
}
