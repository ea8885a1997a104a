package faultproxy

import (
	"fmt"
	"time"
)

// Dir is a direction of a proxied connection.
type Dir int

const (
	Up   Dir = iota // client to server
	Down            // server to client
)

func (d Dir) String() string {
	if d == Up {
		return "up"
	}
	return "down"
}

// Action is what a fault does when it fires.
type Action int

const (
	Drop  Action = iota // close both sides with FIN
	Reset               // close both sides with RST
	Stall               // hold the stream for Fault.For
	Hang                // hold the stream until the connection ends
	Call                // run Fault.Fn with the stream held
)

func (a Action) String() string {
	switch a {
	case Drop:
		return "drop"
	case Reset:
		return "reset"
	case Stall:
		return "stall"
	case Hang:
		return "hang"
	case Call:
		return "call"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Fault is one planned failure. Exactly one of At, Pattern and Literal
// places it (At when the other two are empty).
type Fault struct {
	Name string // for the records; default a description of the fault
	Conn int    // connection number (1 = the first accepted); 0: every connection
	Dir  Dir
	// Max > 0 is how often the fault may fire in all: with Conn 0 and Max
	// 1 it hits whichever connection reaches its position first.
	Max int

	// At is a byte offset in the stream.
	At int64
	// Pattern places the fault After bytes past the end of its Count-th
	// occurrence (Count 0 means 1).
	Pattern string
	Count   int
	// Literal > 0 places the fault inside the first literal of at least
	// Literal bytes: After bytes into its content, or in its middle when
	// After is 0 (an After past its end is its last byte).
	Literal int64
	After   int64

	Action Action
	For    time.Duration // Stall
	Fn     func()        // Call
}

func (f *Fault) String() string {
	if f.Name != "" {
		return f.Name
	}
	var where string
	switch {
	case f.Pattern != "":
		where = fmt.Sprintf("%q#%d+%d", f.Pattern, max(f.Count, 1), f.After)
	case f.Literal > 0:
		where = fmt.Sprintf("literal>=%d+%d", f.Literal, f.After)
	default:
		where = fmt.Sprintf("byte %d", f.At)
	}
	return fmt.Sprintf("%s conn %d %s at %s", f.Action, f.Conn, f.Dir, where)
}

// Event is a fault that fired.
type Event struct {
	Fault  string // Fault.String()
	Conn   int
	Dir    Dir
	Pos    int64 // position in the stream
	Action Action
	Time   time.Time
}

// Truncation is a literal whose stream ended (by a fault, or because a
// side closed) before all of it was delivered.
type Truncation struct {
	Conn      int
	Dir       Dir
	Size      int64 // announced by {n}
	Delivered int64 // bytes of it that were forwarded
}
