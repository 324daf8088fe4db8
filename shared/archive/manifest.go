package archive

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"time"
)

// FormatVersion is the version of the archive layout this package writes and the newest it
// reads: the Row schema, the canonical row encoding and the manifest's meaning. A change that
// an older reader would misread bumps it; a new optional manifest field does not (readers
// ignore fields they do not know), so later additions such as the leaf range of a Merkle log
// and its signed checkpoint go in as new fields of the same JSON object.
const FormatVersion = 1

// ManifestName is the name of a partition's manifest, beside its files.
const ManifestName = "manifest.json"

// Manifest describes one archived partition. It is written last, after every file was read back
// and checked, so a manifest that exists is a complete archive.
type Manifest struct {
	// FormatVersion is the archive format (see FormatVersion).
	FormatVersion int `json:"format_version"`
	// Partition is the leaf's name, e.g. audit_events_r90_2026_05.
	Partition string `json:"partition"`
	// Class is the retention class in days.
	Class int `json:"class"`
	// Month is the calendar month (UTC) the leaf holds, as YYYY-MM.
	Month string `json:"month"`
	// RowCount is the number of events archived: the partition's count when it was read.
	RowCount int64 `json:"row_count"`
	// MinEventTimestamp and MaxEventTimestamp bound the events' timestamps (null when empty).
	MinEventTimestamp *time.Time `json:"min_event_timestamp"`
	MaxEventTimestamp *time.Time `json:"max_event_timestamp"`
	// Format and Compression say how the files are encoded (parquet, zstd).
	Format      string `json:"format"`
	Compression string `json:"compression"`
	// Order is the order of the rows, across files: event_timestamp, then event_id.
	Order string `json:"order"`
	// Files are the data files in order, named relative to the manifest.
	Files []File `json:"files"`
	// CreatedAt is when the archive was completed.
	CreatedAt time.Time `json:"created_at"`
	// Log ties the archive to the integrity log (nil: no event of it was sealed, or it was
	// archived before tamper evidence existed).
	Log *LogRange `json:"log,omitempty"`
}

// File is one data file of an archive.
type File struct {
	// Name is the file's name beside the manifest, e.g. part-000.parquet.
	Name string `json:"name"`
	// Bytes is the file's size.
	Bytes int64 `json:"bytes"`
	// SHA256 is the hex SHA-256 of the file's bytes.
	SHA256 string `json:"sha256"`
	// Rows is the number of events in the file.
	Rows int64 `json:"rows"`
	// RowsSHA256 is the hex SHA-256 of the file's rows in their canonical encoding
	// (Row.AppendCanonical), in order: it checks the values, whatever encoded them.
	RowsSHA256 string `json:"rows_sha256"`
}

// Bytes is the total size of the archive's files.
func (m *Manifest) Bytes() int64 {
	var n int64
	for _, f := range m.Files {
		n += f.Bytes
	}
	return n
}

var fileName = regexp.MustCompile(`^part-[0-9]{3,6}\.parquet$`)

// check reports what makes a manifest unusable for p: a newer format, another partition, file
// names that could point elsewhere, counts that do not add up.
func (m *Manifest) check(p Partition) error {
	switch {
	case m.FormatVersion < 1 || m.FormatVersion > FormatVersion:
		return fmt.Errorf("manifest format_version %d is not one this program reads (1 to %d)", m.FormatVersion, FormatVersion)
	case m.Partition != p.Name:
		return fmt.Errorf("manifest is of partition %q, not %q", m.Partition, p.Name)
	case m.Format != "parquet":
		return fmt.Errorf("manifest format %q is not parquet", m.Format)
	}
	var rows int64
	for _, f := range m.Files {
		if !fileName.MatchString(f.Name) {
			return fmt.Errorf("manifest file name %q is not part-NNN.parquet", f.Name)
		}
		rows += f.Rows
	}
	if rows != m.RowCount {
		return fmt.Errorf("manifest row_count %d is not the sum of its files' rows (%d)", m.RowCount, rows)
	}
	return nil
}

// Partition is a leaf of audit_events to archive: a retention class and a month.
type Partition struct {
	// Name is the leaf's table name, audit_events_r<class>_<yyyy>_<mm>.
	Name string
	// Class is the retention class in days.
	Class int
	// Month is the first instant (UTC) of the month.
	Month time.Time
}

var leafName = regexp.MustCompile(`^audit_events_r([0-9]+)_([0-9]{4})_([0-9]{2})$`)

// ParsePartition returns the partition a leaf name stands for, e.g. audit_events_r90_2026_05.
func ParsePartition(name string) (Partition, error) {
	m := leafName.FindStringSubmatch(name)
	if m == nil {
		return Partition{}, fmt.Errorf("%q is not a partition name: want audit_events_r<class>_<yyyy>_<mm>, e.g. audit_events_r90_2026_05", name)
	}
	class, _ := strconv.Atoi(m[1])
	year, _ := strconv.Atoi(m[2])
	month, _ := strconv.Atoi(m[3])
	if month < 1 || month > 12 {
		return Partition{}, fmt.Errorf("%q: month %02d is not 01 to 12", name, month)
	}
	return Partition{Name: name, Class: class, Month: time.Date(year, time.Month(month), 1, 0, 0, 0, 0, time.UTC)}, nil
}

// PartitionOf returns the partition of a class and the month of t (UTC).
func PartitionOf(class int, t time.Time) Partition {
	t = t.UTC()
	m := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
	return Partition{Name: fmt.Sprintf("audit_events_r%d_%04d_%02d", class, m.Year(), int(m.Month())), Class: class, Month: m}
}

// Dir is the key prefix of the partition's archive: audit_events/r<class>/<yyyy>/<mm>.
func (p Partition) Dir() string {
	return fmt.Sprintf("audit_events/r%d/%04d/%02d", p.Class, p.Month.Year(), int(p.Month.Month()))
}

// ManifestKey is the key of the partition's manifest.
func (p Partition) ManifestKey() string { return path.Join(p.Dir(), ManifestName) }

func (p Partition) fileKey(name string) string { return path.Join(p.Dir(), name) }

func (p Partition) monthString() string { return p.Month.Format("2006-01") }

func marshalManifest(m Manifest) ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}
