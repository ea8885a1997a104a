package pop3

import (
	"context"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// The timing tests leave the server hanging until the client gives up, so
// that they hold on a loaded machine; their time bounds are loose.

func TestTimeout(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: NOOP
		HANG
	`, &Options{Timeout: 100 * time.Millisecond})
	start := time.Now()
	err := c.Noop()
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Noop = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout after %v", d)
	}
	if err := c.Noop(); err == nil || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Noop after a timeout = %v, want the timeout again", err)
	}
}

func TestTimeoutMidBody(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: RETR 1
		S: +OK
		S: part one
		HANG
	`, &Options{Timeout: 100 * time.Millisecond})
	r, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadAll(r); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("ReadAll = %v, want a timeout", err)
	}
}

func TestSlowBodyIsNotCut(t *testing.T) {
	// Timeout bounds each wait, not the whole transfer.
	c := dialFake(t, `
		S: +OK ready
		C: RETR 1
		S: +OK
		S: one
		SLEEP 400ms
		S: two
		SLEEP 400ms
		S: three
		SLEEP 400ms
		S: .
	`, &Options{Timeout: time.Second})
	r, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	if b, err := io.ReadAll(r); string(b) != "one\r\ntwo\r\nthree\r\n" || err != nil {
		t.Errorf("ReadAll = %q, %v", b, err)
	}
}

func TestContextCancel(t *testing.T) {
	c := dialFake(t, pipelineCaps+`
		C: RETR 1
		C: RETR 2
		S: +OK
		S: one
		HANG
	`, nil)
	ctx, cancel := context.WithCancel(t.Context())
	start := time.Now()
	err := c.RetrMany(ctx, []int{1, 2}, func(num int, r io.Reader) error {
		time.AfterFunc(50*time.Millisecond, cancel)
		_, err := io.ReadAll(r)
		return err
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("RetrMany = %v, want context.Canceled", err)
	}
	if d := time.Since(start); d > 4*time.Second { // Timeout is 5s
		t.Errorf("cancel took %v", d)
	}
	if err := c.Noop(); !errors.Is(err, context.Canceled) {
		t.Errorf("Noop after cancel = %v", err)
	}
}

func TestLoginCancelled(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		HANG
	`, nil)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := c.Login(ctx, "bob", "secret"); !errors.Is(err, context.Canceled) {
		t.Fatalf("Login = %v, want context.Canceled", err)
	}
}

func TestCloseAborts(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: NOOP
		HANG
	`, nil)
	time.AfterFunc(50*time.Millisecond, func() { c.Close() })
	if err := c.Noop(); !errors.Is(err, ErrClosed) {
		t.Errorf("Noop = %v, want ErrClosed", err)
	}
}

func TestDroppedMidRetr(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: RETR 1
		S: +OK 1000 octets
		S: Subject: cut short
		R: half a li
		CLOSE
	`, nil)
	r, err := c.Retr(1)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(r)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("ReadAll = %q, %v; want io.ErrUnexpectedEOF", b, err)
	}
	if err := r.Close(); err == nil {
		t.Error("Close after a dropped connection: no error")
	}
	if err := c.Noop(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("Noop after the drop = %v", err)
	}
}

func TestDroppedMidRetrMany(t *testing.T) {
	c := dialFake(t, pipelineCaps+`
		C: RETR 1
		C: RETR 2
		S: +OK
		S: one
		S: .
		S: +OK
		S: tw
		CLOSE
	`, nil)
	var got []int
	err := c.RetrMany(t.Context(), []int{1, 2}, func(num int, r io.Reader) error {
		got = append(got, num)
		_, err := io.ReadAll(r)
		return err
	})
	if !errors.Is(err, io.ErrUnexpectedEOF) || !reflect.DeepEqual(got, []int{1, 2}) {
		t.Errorf("RetrMany = %v after %v", err, got)
	}
}

func TestProtocolErrors(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		call         func(*Client) error
		msg          string
	}{
		{"status", `
			S: +OK ready
			C: NOOP
			S: OK fine`, (*Client).Noop, "malformed status line"},
		{"long status", `
			S: +OK ready
			C: NOOP
			S: +OK ` + strings.Repeat("x", maxLine), (*Client).Noop, "longer than 8192"},
		{"long list line", `
			S: +OK ready
			C: LIST
			S: +OK
			S: 1 ` + strings.Repeat("1", maxLine), func(c *Client) error { _, err := c.List(); return err }, "longer than 8192"},
		{"bad list line", `
			S: +OK ready
			C: LIST
			S: +OK
			S: 1 12
			S: two 13
			S: .`, func(c *Client) error { _, err := c.List(); return err }, "not a number"},
		{"uidl without uid", `
			S: +OK ready
			C: UIDL
			S: +OK
			S: 1
			S: .`, func(c *Client) error { _, err := c.UIDL(); return err }, "no UID"},
		{"stat", `
			S: +OK ready
			C: STAT
			S: +OK lots`, func(c *Client) error { _, _, err := c.Stat(); return err }, "STAT reply"},
		{"uidl one for another message", `
			S: +OK ready
			C: UIDL 2
			S: +OK 3 abc`, func(c *Client) error { _, err := c.UIDLOne(2); return err }, "message 3"},
		{"continuation outside AUTH", `
			S: +OK ready
			C: NOOP
			S: + go on`, (*Client).Noop, "malformed status line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialFake(t, tc.script, nil)
			err := tc.call(c)
			var pe *ProtocolError
			if !errors.As(err, &pe) || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v, want a ProtocolError with %q", err, tc.msg)
			}
			if len(err.Error()) > 300 {
				t.Errorf("error message is %d bytes long", len(err.Error()))
			}
			if err := c.Noop(); !errors.As(err, &pe) {
				t.Errorf("Noop after a protocol error = %v", err)
			}
		})
	}
}
