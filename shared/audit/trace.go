package audit

import "strings"

// ParseTraceparent reads a W3C Trace Context traceparent ("00-<trace-id>-<parent-id>-<flags>")
// and returns its trace id and parent (span) id, or ok=false when it is malformed or names the
// all-zero ids the specification forbids.
func ParseTraceparent(s string) (traceID, spanID string, ok bool) {
	s = strings.TrimSpace(s)
	if len(s) < 55 { // 00-<32>-<16>-<2>: most requests have none, and Split would allocate
		return "", "", false
	}
	parts := strings.Split(s, "-")
	if len(parts) < 4 || len(parts[0]) != 2 || parts[0] == "ff" || len(parts[1]) != 32 || len(parts[2]) != 16 || len(parts[3]) != 2 {
		return "", "", false
	}
	if parts[0] == "00" && len(parts) != 4 {
		return "", "", false
	}
	for _, p := range parts[:4] {
		if !isLowerHex(p) {
			return "", "", false
		}
	}
	if strings.Trim(parts[1], "0") == "" || strings.Trim(parts[2], "0") == "" {
		return "", "", false
	}
	return parts[1], parts[2], true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
