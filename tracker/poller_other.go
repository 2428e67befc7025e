//go:build !linux

package tracker

import (
	"context"
	"errors"
	"sync"
)

// poller is only implemented on Linux; elsewhere every socket keeps a
// parked reader goroutine.
type poller struct{}

// pollLoop is one of the poller's event loops (none here).
type pollLoop struct{}

func newPoller() (*poller, error) { return nil, errors.New("no poller on this platform") }

func (p *poller) add(*conn) error                      { return errors.New("no poller") }
func (p *poller) remove(*conn)                         {}
func (p *poller) count() int                           { return 0 }
func (p *poller) run(context.Context, *sync.WaitGroup) {}

func (c *conn) readReady(*pollLoop) bool { return false }

const pollerAvailable = false
