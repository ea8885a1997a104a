package pop3d

import (
	"context"
	"errors"
	"io/fs"

	"github.com/postfach/postfach/index"
)

// transaction answers a command in the TRANSACTION state.
func (ss *session) transaction(c command) error {
	md := ss.md
	switch c.Verb {
	case "STAT":
		if len(c.Args) != 0 {
			return ss.refuse("STAT takes no argument")
		}
		n, size := md.counts()
		ss.ok("%d %d", n, size)
	case "LIST", "UIDL":
		return ss.list(c)
	case "RETR":
		if len(c.Args) != 1 {
			return ss.refuse("RETR takes a message number")
		}
		return ss.send(c.Args[0], -1)
	case "TOP":
		if len(c.Args) != 2 {
			return ss.refuse("TOP takes a message number and a line count")
		}
		lines, ok := parseNum(c.Args[1])
		if !ok {
			return ss.refuse("invalid line count")
		}
		return ss.send(c.Args[0], lines)
	case "DELE":
		if len(c.Args) != 1 {
			return ss.refuse("DELE takes a message number")
		}
		n, e, msg := ss.message(c.Args[0])
		if e == nil {
			return ss.refuse(msg)
		}
		e.deleted = true
		ss.ok("message %d deleted", n)
	case "RSET":
		if len(c.Args) != 0 {
			return ss.refuse("RSET takes no argument")
		}
		for i := range md.msgs {
			md.msgs[i].deleted = false
		}
		n, size := md.counts()
		ss.ok("maildrop has %d messages (%d octets)", n, size)
	case "NOOP":
		if len(c.Args) != 0 {
			return ss.refuse("NOOP takes no argument")
		}
		ss.ok("")
	case "QUIT":
		return ss.quit()
	case "CAPA":
		return ss.capa(c)
	case "USER", "PASS", "AUTH", "APOP", "STLS":
		return ss.refuse("logged in already")
	default:
		return ss.refuse("unknown command")
	}
	return nil
}

// ok queues a +OK reply and resets the count of refused commands.
func (ss *session) ok(format string, args ...any) {
	ss.bad = 0
	if format == "" {
		ss.reply("+OK")
		return
	}
	ss.reply("+OK "+format, args...)
}

// message returns message number arg of the maildrop, or nil and why not.
func (ss *session) message(arg string) (int, *entry, string) {
	n, ok := parseNum(arg)
	if !ok {
		return 0, nil, "invalid message number"
	}
	if n < 1 || n > len(ss.md.msgs) {
		return 0, nil, "no such message"
	}
	e := &ss.md.msgs[n-1]
	if e.deleted {
		return 0, nil, "message is deleted"
	}
	return n, e, ""
}

// list answers LIST and UIDL, for one message or for all not deleted.
func (ss *session) list(c command) error {
	field := func(e *entry) any { return e.size }
	if c.Verb == "UIDL" {
		field = func(e *entry) any { return e.uidl }
	}
	switch len(c.Args) {
	case 0:
		if c.Verb == "LIST" {
			n, size := ss.md.counts()
			ss.ok("%d messages (%d octets)", n, size)
		} else {
			ss.ok("unique-id listing follows")
		}
		for i := range ss.md.msgs {
			if e := &ss.md.msgs[i]; !e.deleted {
				ss.reply("%d %v", i+1, field(e))
			}
		}
		ss.reply(".")
	case 1:
		n, e, msg := ss.message(c.Args[0])
		if e == nil {
			return ss.refuse(msg)
		}
		ss.ok("%d %v", n, field(e))
	default:
		return ss.refuse(c.Verb + " takes at most a message number")
	}
	return nil
}

// send answers RETR (lines < 0) and TOP: the message streamed from its
// file. A message whose file is gone (removed since login) gets -ERR; a
// failure once the +OK went out ends the session (the reply cannot be
// finished).
func (ss *session) send(arg string, lines int) error {
	_, e, msg := ss.message(arg)
	if e == nil {
		return ss.refuse(msg)
	}
	body, err := ss.s.o.Store.OpenMessage(ss.md.folder, &index.Message{ID: e.id, Key: e.key, File: e.file})
	if errors.Is(err, fs.ErrNotExist) {
		ss.bad = 0
		ss.reply("-ERR message was removed since login")
		return nil
	}
	if err != nil {
		ss.log.Error("pop3d: cannot read message", "key", e.key, "err", err)
		ss.bad = 0
		ss.reply("-ERR [SYS/TEMP] cannot read the message now")
		return nil
	}
	defer body.Close()
	if lines < 0 {
		ss.ok("%d octets", e.size)
	} else {
		ss.ok("top of message follows")
	}
	if ss.buf == nil {
		ss.buf = make([]byte, 32<<10)
	}
	if err := copyMessage(newDotWriter(ss.bw, lines), body, ss.buf); err != nil {
		ss.log.Info("pop3d: sending a message failed", "key", e.key, "err", err)
		return errClose
	}
	return nil
}

// quit answers QUIT in the TRANSACTION state: the UPDATE state removes
// the marked messages, then the session ends.
func (ss *session) quit() error {
	// The removal is finished even if the server closes meanwhile: the
	// client asked for it and the door's steps are not to be cut short.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ss.s.ctx), ss.s.lim.updateTimeout)
	defer cancel()
	n, err := ss.s.update(ctx, ss.md)
	// The maildrop is free before the reply goes out: a client that
	// logs in again right after QUIT finds it free.
	ss.s.unlock(ss.md.account)
	ss.md = nil
	if err != nil {
		ss.log.Error("pop3d: removing deleted messages failed", "err", err)
		ss.reply("-ERR [SYS/TEMP] some deleted messages not removed")
		return errClose
	}
	if n > 0 {
		ss.log.Info("pop3d: messages deleted", "count", n)
	}
	ss.reply("+OK bye (%d messages removed)", n)
	return errClose
}
