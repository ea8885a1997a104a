package pop3

import (
	"errors"
	"io"
	"reflect"
	"strconv"
	"testing"
)

const pipelineCaps = `
		S: +OK ready
		C: CAPA
		S: +OK
		S: PIPELINING
		S: .
`

func TestRetrManyPipelined(t *testing.T) {
	// With a depth of 3, the first three RETRs must arrive before any reply:
	// a client that waited for the first reply would stall the script.
	c := dialFake(t, pipelineCaps+`
		C: RETR 5
		C: RETR 3
		C: RETR 9
		S: +OK
		S: five
		S: .
		C: RETR 4
		S: +OK
		S: ..three
		S: .
		C: RETR 1
		S: +OK
		S: nine
		S: .
		S: +OK
		S: four
		S: .
		S: +OK
		S: one
		S: .
		C: NOOP
		S: +OK
	`, &Options{PipelineDepth: 3})
	var got []string
	err := c.RetrMany(t.Context(), []int{5, 3, 9, 4, 1}, func(num int, r io.Reader) error {
		if err := c.Noop(); err == nil {
			t.Error("Noop inside RetrMany's callback succeeded")
		}
		b, err := io.ReadAll(r)
		got = append(got, strconv.Itoa(num)+"="+string(b))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"5=five\r\n", "3=.three\r\n", "9=nine\r\n", "4=four\r\n", "1=one\r\n"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := c.Noop(); err != nil {
		t.Error(err)
	}
}

func TestRetrManyWithoutPipelining(t *testing.T) {
	c := dialFake(t, `
		S: +OK ready
		C: CAPA
		S: +OK
		S: UIDL
		S: .
		C: RETR 1
		QUIET
		S: +OK
		S: one
		S: .
		C: RETR 2
		QUIET
		S: +OK
		S: two
		S: .
	`, nil)
	var got []string
	err := c.RetrMany(t.Context(), []int{1, 2}, func(num int, r io.Reader) error {
		// Leave the body unread: RetrMany drains it.
		got = append(got, strconv.Itoa(num))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, []string{"1", "2"}) {
		t.Errorf("got %v", got)
	}
}

func TestRetrManyStops(t *testing.T) {
	// fn fails on the second message: the third, already requested, is read
	// and dropped; the fourth is never requested; the session goes on.
	stop := errors.New("disk full")
	c := dialFake(t, pipelineCaps+`
		C: RETR 1
		C: RETR 2
		C: RETR 3
		S: +OK
		S: one
		S: .
		C: RETR 4
		S: +OK
		S: two
		S: .
		S: +OK
		S: three
		S: .
		S: +OK
		S: four
		S: .
		C: RETR 1
		C: RETR 7
		C: RETR 2
		S: +OK
		S: one
		S: .
		C: RETR 3
		S: -ERR [SYS/TEMP] cannot read message 7
		S: +OK
		S: two
		S: .
		S: +OK
		S: three
		S: .
		C: DELE 1
		S: +OK
	`, &Options{PipelineDepth: 3})
	var got []int
	err := c.RetrMany(t.Context(), []int{1, 2, 3, 4, 5}, func(num int, r io.Reader) error {
		got = append(got, num)
		if num == 2 {
			return stop
		}
		return nil
	})
	if err != stop || !reflect.DeepEqual(got, []int{1, 2}) {
		t.Fatalf("RetrMany = %v after %v; want %v after [1 2]", err, got, stop)
	}
	got = nil
	err = c.RetrMany(t.Context(), []int{1, 7, 2, 3}, func(num int, r io.Reader) error {
		got = append(got, num)
		return nil
	})
	var e *Error
	if !errors.As(err, &e) || e.Command != "RETR 7" || !IsTemporary(err) || !reflect.DeepEqual(got, []int{1}) {
		t.Fatalf("RetrMany = %v after %v", err, got)
	}
	if err := c.Dele(1); err != nil {
		t.Error(err)
	}
}

func TestDeleMany(t *testing.T) {
	c := dialFake(t, pipelineCaps+`
		C: DELE 1
		C: DELE 2
		S: +OK
		C: DELE 3
		S: -ERR no such message
		S: +OK
		C: QUIT
		S: +OK bye
	`, &Options{PipelineDepth: 2})
	err := c.DeleMany(t.Context(), []int{1, 2, 3, 4})
	var e *Error
	if !errors.As(err, &e) || e.Command != "DELE 2" {
		t.Fatalf("DeleMany = %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatal(err)
	}
}

func TestTopManyPipelined(t *testing.T) {
	// TOP 2 0 is refused: its reply has no body, TOP 3 0 is read and
	// dropped, and the session goes on.
	c := dialFake(t, pipelineCaps+`
		C: TOP 1 0
		C: TOP 2 0
		C: TOP 3 0
		S: +OK
		S: Subject: one
		S:
		S: .
		S: -ERR no such message
		S: +OK
		S: Subject: three
		S:
		S: .
		C: NOOP
		S: +OK
	`, &Options{PipelineDepth: 3})
	var got []string
	err := c.TopMany(t.Context(), []int{1, 2, 3}, 0, func(num int, r io.Reader) error {
		b, err := io.ReadAll(r)
		got = append(got, strconv.Itoa(num)+"="+string(b))
		return err
	})
	var e *Error
	if !errors.As(err, &e) || e.Command != "TOP 2 0" {
		t.Errorf("TopMany = %v, want -ERR for TOP 2 0", err)
	}
	if want := []string{"1=Subject: one\r\n\r\n"}; !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if err := c.Noop(); err != nil {
		t.Error(err)
	}
	if err := c.TopMany(t.Context(), []int{1}, -1, nil); err == nil {
		t.Error("TopMany with a negative line count succeeded")
	}
}
