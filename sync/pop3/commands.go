package pop3

import (
	"fmt"
	"strconv"
)

// Stat returns the number of messages in the maildrop and their total size
// in octets, not counting messages marked for deletion.
func (c *Client) Stat() (count int, size int64, err error) {
	const cmd = "STAT"
	text, err := c.cmd(cmd, cmd)
	if err != nil {
		return 0, 0, err
	}
	count, size, err = parseStat(text)
	if err != nil {
		return 0, 0, c.fail(cmd, protoErr(cmd, err.Error(), text))
	}
	return count, size, nil
}

// List returns the number and size of every message not marked for
// deletion.
func (c *Client) List() ([]MsgInfo, error) {
	const cmd = "LIST"
	if _, err := c.cmd(cmd, cmd); err != nil {
		return nil, err
	}
	var msgs []MsgInfo
	err := c.multiLine(cmd, maxListing, func(line string) error {
		m, err := parseListLine(line)
		msgs = append(msgs, m)
		return err
	})
	if err != nil {
		return nil, err
	}
	return msgs, nil
}

// UIDL returns the number and unique id of every message not marked for
// deletion. UIDs that break RFC 1939 or repeat are kept and flagged in
// MsgInfo.UIDProblem (and logged as a warning).
func (c *Client) UIDL() ([]MsgInfo, error) {
	const cmd = "UIDL"
	if _, err := c.cmd(cmd, cmd); err != nil {
		return nil, err
	}
	var msgs []MsgInfo
	seen := make(map[string]int)
	bad := 0
	err := c.multiLine(cmd, maxListing, func(line string) error {
		m, err := parseUIDLLine(line)
		if err != nil {
			return err
		}
		if first, ok := seen[m.UID]; ok {
			dup := "same UID as message " + strconv.Itoa(first)
			if m.UIDProblem != "" {
				m.UIDProblem += "; " + dup
			} else {
				m.UIDProblem = dup
			}
		} else {
			seen[m.UID] = m.Num
		}
		if m.UIDProblem != "" {
			bad++
		}
		msgs = append(msgs, m)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if bad > 0 {
		c.log.Warn("pop3 server sent UIDs that break RFC 1939 or repeat", "count", bad, "of", len(msgs))
	}
	return msgs, nil
}

// UIDLOne returns the unique id of message num.
func (c *Client) UIDLOne(num int) (MsgInfo, error) {
	cmd := "UIDL " + strconv.Itoa(num)
	if err := checkNum(cmd, num); err != nil {
		return MsgInfo{}, err
	}
	text, err := c.cmd(cmd, cmd)
	if err != nil {
		return MsgInfo{}, err
	}
	m, err := parseUIDLLine(text)
	if err == nil && m.Num != num {
		err = fmt.Errorf("reply is for message %d", m.Num)
	}
	if err != nil {
		return MsgInfo{}, c.fail(cmd, protoErr(cmd, err.Error(), text))
	}
	return m, nil
}

// Dele marks message num for deletion. Nothing is deleted until Quit.
func (c *Client) Dele(num int) error {
	cmd := "DELE " + strconv.Itoa(num)
	if err := checkNum(cmd, num); err != nil {
		return err
	}
	_, err := c.cmd(cmd, cmd)
	return err
}

// Rset unmarks all messages marked for deletion in this session.
func (c *Client) Rset() error {
	_, err := c.cmd("RSET", "RSET")
	return err
}

// Noop asks the server for nothing; it keeps the session alive.
func (c *Client) Noop() error {
	_, err := c.cmd("NOOP", "NOOP")
	return err
}

// Quit ends the session with QUIT, which makes the server delete the
// messages marked with Dele, and closes the connection. Without QUIT
// nothing is deleted.
//
// A *Error means the server refused to delete some or all of them (RFC 2449
// suggests [SYS/PERM] or [SYS/TEMP]). Any other error means the outcome is
// unknown. The connection is closed in every case, except that Quit with a
// message body still open (ErrBodyOpen) or from inside RetrMany's callback
// returns an error and changes nothing.
func (c *Client) Quit() error {
	const cmd = "QUIT"
	if err := c.check(cmd); err != nil && (c.body != nil || c.batch) {
		return err
	}
	defer c.closeConn()
	_, err := c.cmd(cmd, cmd)
	if err == nil {
		c.log.Debug("pop3 session ended with QUIT")
	}
	return err
}

func checkNum(cmd string, num int) error {
	if num < 1 {
		return fmt.Errorf("pop3: %s: message numbers start at 1", cmd)
	}
	return nil
}
