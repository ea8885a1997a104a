package pop3

import (
	"context"
	"fmt"
	"io"
	"strconv"
)

// RetrMany retrieves the messages nums in order and calls fn with each
// message as it comes off the wire. fn must not keep r after it returns;
// whatever fn leaves unread is read and discarded. fn may not call other
// methods of the Client.
//
// When the server advertises PIPELINING, up to Options.PipelineDepth RETR
// commands are written ahead of the replies, which hides the round trip per
// message; otherwise they are sent one by one. Bodies are streamed either
// way: in-flight messages wait in the server's socket, not in memory here.
//
// RetrMany stops at the first -ERR (a *Error naming the message) or the
// first error from fn, which it returns after reading and discarding the
// replies still in flight, so that the session stays usable (for instance
// to delete the messages that were stored). A network or protocol error
// ends the session at once.
func (c *Client) RetrMany(ctx context.Context, nums []int, fn func(num int, r io.Reader) error) error {
	return c.many(ctx, "RETR", "", nums, func(num int, b *bodyReader) error { return fn(num, b) })
}

// TopMany retrieves the header and the first lines lines of the body of
// each of the messages nums (TOP), pipelined and streamed like RetrMany,
// with the same rules for fn and the same stop at the first -ERR.
func (c *Client) TopMany(ctx context.Context, nums []int, lines int, fn func(num int, r io.Reader) error) error {
	if lines < 0 {
		return fmt.Errorf("pop3: TOP: negative line count")
	}
	return c.many(ctx, "TOP", " "+strconv.Itoa(lines), nums, func(num int, b *bodyReader) error { return fn(num, b) })
}

// DeleMany marks the messages nums for deletion, pipelined like RetrMany.
// It stops sending at the first -ERR, which it returns once the replies in
// flight are read; the messages marked before it stay marked (Rset unmarks
// them). Nothing is deleted until Quit.
func (c *Client) DeleMany(ctx context.Context, nums []int) error {
	return c.many(ctx, "DELE", "", nums, nil)
}

// many sends "verb num args" for each of nums with up to depth commands in
// flight. For RETR and TOP, body is called with each reply's body.
func (c *Client) many(ctx context.Context, verb, args string, nums []int, body func(int, *bodyReader) error) error {
	if err := c.check(verb); err != nil {
		return err
	}
	for _, n := range nums {
		if err := checkNum(verb+" "+strconv.Itoa(n), n); err != nil {
			return err
		}
	}
	if len(nums) == 0 {
		return nil
	}
	return c.withContext(ctx, func() error {
		depth := 1
		if c.opts.PipelineDepth > 1 && len(nums) > 1 {
			caps, err := c.Capa()
			if err != nil {
				return err
			}
			if caps.Has("PIPELINING") {
				depth = c.opts.PipelineDepth
			}
		}
		c.batch = true
		defer func() { c.batch = false }()

		sent := 0
		var firstErr error // -ERR or an error from body: stop sending
		for i := 0; i < len(nums); i++ {
			if firstErr == nil && sent < len(nums) && sent-i < depth {
				for sent < len(nums) && sent-i < depth {
					n := nums[sent]
					if err := c.send(verb, verb+" "+strconv.Itoa(n)+args); err != nil {
						return err
					}
					sent++
				}
				if err := c.flush(verb); err != nil {
					return err
				}
			}
			if i >= sent {
				break
			}
			cmd := verb + " " + strconv.Itoa(nums[i]) + args
			if _, err := c.status(cmd); err != nil {
				if c.err != nil {
					return err // fatal
				}
				if firstErr == nil {
					firstErr = err
				}
				continue
			}
			if body == nil {
				continue
			}
			b := c.openBody(cmd)
			if firstErr == nil {
				if err := body(nums[i], b); err != nil {
					firstErr = err
				}
			}
			if err := b.Close(); err != nil {
				if firstErr != nil {
					return firstErr
				}
				return err
			}
		}
		if firstErr != nil && sent < len(nums) {
			c.log.Debug("pop3 batch stopped early", "verb", verb, "done", sent, "of", len(nums))
		}
		return firstErr
	})
}
