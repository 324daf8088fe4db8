// Package hostile runs auditstore as its standalone process does (standalonetest) and attacks
// it the way the hostile-input suite and its benchmark do: bodies nested deep, huge or slow,
// query strings with more parameters than a parser takes, floods of connections.
package hostile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/auditstore/auditstore/shared/web"
	"github.com/auditstore/auditstore/test/standalonetest"
)

// Tokens of the server's three principals.
const (
	WriterToken = standalonetest.WriterToken
	ReaderToken = standalonetest.ReaderToken
	AdminToken  = standalonetest.AdminToken
)

// Start serves the functions as the standalone process does (standalonetest.Start) over
// databaseURL with serve's HTTP settings, a rate limit the attacks do not reach (they must
// reach the parsers) and reads left unrecorded. dir holds the token file.
func Start(ctx context.Context, databaseURL, dir string, serve web.ServeConfig) (*standalonetest.Server, error) {
	return standalonetest.Start(ctx, databaseURL, dir, func(c *standalonetest.Config) {
		c.Serve = serve
		c.Auth.RateLimit, c.Auth.RateBurst = 1e6, 1e6
		c.Query.AuditReads = false
	})
}

// Event is a valid JSON event whose event_data holds pad bytes of text.
func Event(correlationID string, pad int) []byte {
	return []byte(`{"event_type":"gateway.signal.received","event_outcome":"success","correlation_id":"` + correlationID +
		`","event_data":{"version":"1.0","service":"gateway","operation":"signal.received","status":"success","payload":{"note":"` +
		strings.Repeat("x", pad) + `"}}}`)
}

// DeepEvent is an event whose event_data nests objects depth levels deep.
func DeepEvent(depth int) []byte {
	return []byte(`{"event_type":"a.b","event_outcome":"success","correlation_id":"c","event_data":` +
		strings.Repeat(`{"a":`, depth) + "1" + strings.Repeat("}", depth) + `}`)
}

// DeepArray is a body that opens size/2 arrays and closes them: the deepest JSON of that size.
func DeepArray(size int) []byte {
	return []byte(strings.Repeat("[", size/2) + strings.Repeat("]", size/2))
}

// ManyParams is a query string of n times name=value.
func ManyParams(name, value string, n int) string {
	return strings.TrimSuffix(strings.Repeat(name+"="+value+"&", n), "&")
}

// Post sends body to path with a token and Content-Type application/json, and returns the
// status and the answer's body.
func Post(c *http.Client, url, token string, body []byte) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	return do(c, req)
}

// Get asks for url with a token.
func Get(c *http.Client, url, token string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return do(c, req)
}

func do(c *http.Client, req *http.Request) (int, []byte, error) {
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// SlowBody opens a connection from local (an address of this host, so that a test can be one
// client and the attacker another) and sends a POST whose body of n bytes arrives one byte
// every interval. It returns the status line the server answered with ("" when it closed the
// connection without one) once the server answers or closes.
func SlowBody(addr string, local net.IP, n int, interval time.Duration) (string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return "", err
	}
	defer c.Close()
	_, err = fmt.Fprintf(c, "POST /api/v1/audit/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", WriterToken, n)
	if err != nil {
		return "", err
	}
	answered := make(chan string, 1)
	go func() {
		line := make([]byte, 12)
		if _, err := io.ReadFull(c, line); err != nil {
			answered <- ""
			return
		}
		answered <- string(line)
	}()
	t := time.NewTicker(interval)
	defer t.Stop()
	for range n {
		select {
		case l := <-answered:
			return l, nil
		case <-t.C:
		}
		if _, err := c.Write([]byte(" ")); err != nil {
			return <-answered, nil
		}
	}
	return <-answered, nil
}

// Hold opens a connection from local and keeps it open, sending nothing, until ctx ends or
// the server closes it; it reports what the server sent first (a refusal) or "" when it
// sent nothing.
func Hold(ctx context.Context, addr string, local net.IP) (string, error) {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: local}}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return "", err
	}
	go func() {
		<-ctx.Done()
		_ = c.Close()
	}()
	line := make([]byte, 12)
	if _, err := io.ReadFull(c, line); err != nil {
		if errors.Is(err, io.EOF) || ctx.Err() != nil {
			return "", nil
		}
		return "", nil
	}
	return string(line), nil
}
