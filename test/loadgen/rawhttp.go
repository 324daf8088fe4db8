package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"time"
)

// The scenarios send their requests over HTTP/1.1 connections of their own instead of
// net/http's client: its Transport hands every request and response between three goroutines
// and allocates a request, a header map and a response each time, which cost the generator
// about as much CPU as the write function spent on a request, on the same two cores. Here a
// request is the template's bytes, written with one system call on a kept-alive connection;
// the response's status line and headers are parsed, and its body (by Content-Length or
// chunked) is read whole, so every response is checked as before.

// rawConn is one kept-alive HTTP/1.1 connection and the buffers reused for its requests.
type rawConn struct {
	c   net.Conn
	br  *bufio.Reader
	req []byte
	// body is the last response's body (valid until the next request).
	body []byte
}

// connPool hands out connections to one server, dialling new ones as needed.
type connPool struct {
	host string // host:port
	path string
	mu   sync.Mutex
	free []*rawConn
}

func newConnPool(rawURL string) (*connPool, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("%s: only http:// URLs are supported", rawURL)
	}
	return &connPool{host: u.Host, path: u.RequestURI()}, nil
}

// get returns a free connection, or a new one (not yet dialled).
func (p *connPool) get() *rawConn {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		c := p.free[n-1]
		p.free = p.free[:n-1]
		return c
	}
	return &rawConn{}
}

// put returns a connection for reuse.
func (p *connPool) put(c *rawConn) {
	p.mu.Lock()
	p.free = append(p.free, c)
	p.mu.Unlock()
}

// close closes every free connection.
func (p *connPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.free {
		c.reset()
	}
	p.free = nil
}

func (c *rawConn) reset() {
	if c.c != nil {
		c.c.Close()
		c.c, c.br = nil, nil
	}
}

// do sends c.req (a whole request) and reads the response: its status and, in c.body, its
// body. Any failure closes the connection; the next request dials again.
func (c *rawConn) do(ctx context.Context, host string) (int, error) {
	if c.c == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", host)
		if err != nil {
			return 0, err
		}
		c.c, c.br = conn, bufio.NewReaderSize(conn, 16<<10)
	}
	if deadline, ok := ctx.Deadline(); ok {
		_ = c.c.SetDeadline(deadline)
	} else {
		_ = c.c.SetDeadline(time.Now().Add(time.Minute))
	}
	status, keep, err := c.roundTrip()
	if err != nil || !keep {
		c.reset()
	}
	return status, err
}

func (c *rawConn) roundTrip() (status int, keepAlive bool, err error) {
	if _, err := c.c.Write(c.req); err != nil {
		return 0, false, err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return 0, false, fmt.Errorf("reading the response: %w", err)
	}
	// HTTP/1.1 201 Created
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	status, err = strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, false, fmt.Errorf("malformed status line %q", line)
	}
	length, chunked, keepAlive := -1, false, true
	for {
		h, err := c.br.ReadSlice('\n')
		if err != nil {
			return status, false, fmt.Errorf("reading the response headers: %w", err)
		}
		h = bytes.TrimRight(h, "\r\n")
		if len(h) == 0 {
			break
		}
		name, value, ok := bytes.Cut(h, []byte(":"))
		if !ok {
			return status, false, fmt.Errorf("malformed header %q", h)
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(value)); err != nil || length < 0 {
				return status, false, fmt.Errorf("malformed Content-Length %q", value)
			}
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(value, []byte("chunked"))
			if !chunked {
				return status, false, fmt.Errorf("unsupported Transfer-Encoding %q", value)
			}
		case bytes.EqualFold(name, []byte("Connection")):
			keepAlive = !bytes.EqualFold(value, []byte("close"))
		}
	}
	c.body = c.body[:0]
	switch {
	case chunked:
		err = c.readChunked()
	case length >= 0:
		c.body = grow(c.body, length)
		_, err = io.ReadFull(c.br, c.body)
	case status == 204 || status == 304 || status/100 == 1:
	default:
		// No length: the body runs to the end of the connection.
		c.body, err = io.ReadAll(c.br)
		keepAlive = false
	}
	if err != nil {
		return status, false, fmt.Errorf("reading the response body: %w", err)
	}
	return status, keepAlive, nil
}

func (c *rawConn) readChunked() error {
	for {
		line, err := c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		sizeText, _, _ := bytes.Cut(bytes.TrimRight(line, "\r\n"), []byte(";"))
		size, err := strconv.ParseInt(string(bytes.TrimSpace(sizeText)), 16, 64)
		if err != nil || size < 0 {
			return fmt.Errorf("malformed chunk size %q", line)
		}
		if size == 0 {
			for { // trailers, then the empty line
				line, err := c.br.ReadSlice('\n')
				if err != nil {
					return err
				}
				if len(bytes.TrimRight(line, "\r\n")) == 0 {
					return nil
				}
			}
		}
		n := len(c.body)
		c.body = grow(c.body, n+int(size))
		if _, err := io.ReadFull(c.br, c.body[n:]); err != nil {
			return err
		}
		if crlf, err := c.br.ReadSlice('\n'); err != nil || len(bytes.TrimRight(crlf, "\r\n")) != 0 {
			return errors.New("malformed chunk end")
		}
	}
}

// grow returns b resized to n bytes, keeping its contents and reusing its array when it is
// large enough.
func grow(b []byte, n int) []byte {
	if cap(b) >= n {
		return b[:n]
	}
	return append(b[:cap(b)], make([]byte, n-cap(b))...)[:n]
}
