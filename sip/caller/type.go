package caller

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/tonevault/tonevault/dtmf"
	"github.com/tonevault/tonevault/internal/secret"
)

// Type presses the keys of digits (0-9 * # A-D) in mode, with the call's
// Timing, and returns once the last press has been sent. digits is not
// kept nor changed: wipe it afterwards if it matters. A digit that is not
// a key is reported by its position, and nothing is sent. If ctx ends, a
// telephone-event being sent still gets its End packets and Type returns
// ctx's error; if the call ends first, ErrHungUp.
func (c *Call) Type(ctx context.Context, digits []byte, mode Mode) error {
	select {
	case <-c.done:
		return ErrHungUp
	default:
	}
	c.typing.Lock()
	defer c.typing.Unlock()
	if mode == RFC4733 && c.media.current().eventPT < 0 {
		return errors.New("caller: the far end did not accept telephone-event: use inband or info")
	}
	if mode != InBand && mode != RFC4733 && mode != Info {
		return fmt.Errorf("caller: unknown mode %v", mode)
	}
	presses, err := plan(digits, c.opts.Timing, c.rng)
	if err != nil {
		return fmt.Errorf("caller: %w", err)
	}
	defer wipePlan(presses)
	last := presses[len(presses)-1].end
	if c.opts.ShowDigits {
		c.logf("typing %d digits (%s, %.1f s): %s", len(presses), mode, seconds(last), digits)
	} else {
		c.logf("typing %d digits (%s, %.1f s)", len(presses), mode, seconds(last))
	}
	if mode == Info {
		err = c.typeInfo(ctx, presses)
	} else {
		err = c.typeRTP(ctx, mode, presses)
	}
	if err == nil {
		c.logf("typed %d digits", len(presses))
	}
	return err
}

func (c *Call) typeRTP(ctx context.Context, mode Mode, presses []press) error {
	j, err := c.media.schedule(mode, presses)
	if err != nil {
		return err
	}
	select {
	case <-j.done:
		if j.hungUp {
			return ErrHungUp
		}
		return nil
	case <-c.done:
		return ErrHungUp
	case <-ctx.Done():
		c.media.abort(j)
		select {
		case <-j.done:
		case <-c.done:
		}
		return ctx.Err()
	}
}

// typeInfo sends one INFO per press at its start. The press's length
// goes in the body; the next INFO waits for the gap, as a phone does.
func (c *Call) typeInfo(ctx context.Context, presses []press) error {
	start := time.Now()
	wait := func(at int64) error {
		t := time.NewTimer(time.Until(start.Add(duration(at))))
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-c.done:
			return ErrHungUp
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for i, p := range presses {
		if err := wait(p.start); err != nil {
			return err
		}
		body := infoBody(p.digit, duration(p.end-p.start))
		err := c.sendInfo(ctx, body)
		secret.Wipe(body)
		if err != nil {
			return fmt.Errorf("caller: INFO for digit %d of %d: %w", i+1, len(presses), err)
		}
	}
	return wait(presses[len(presses)-1].end)
}

func (c *Call) sendInfo(ctx context.Context, body []byte) error {
	recipient := c.dlg.InviteRequest.Recipient
	if ct := c.dlg.InviteResponse.Contact(); ct != nil {
		recipient = ct.Address
	}
	req := sip.NewRequest(sip.INFO, *recipient.Clone())
	req.AppendHeader(sip.NewHeader("Content-Type", "application/dtmf-relay"))
	req.SetBody(body)
	res, err := c.dlg.Do(ctx, req)
	if err != nil {
		select {
		case <-c.done:
			return ErrHungUp
		default:
		}
		return err
	}
	if !res.IsSuccess() {
		return fmt.Errorf("answered %d %s", res.StatusCode, res.Reason)
	}
	return nil
}

func duration(samples int64) time.Duration {
	return time.Duration(samples) * time.Second / dtmf.SampleRate
}

func seconds(samples int64) float64 { return float64(samples) / dtmf.SampleRate }
