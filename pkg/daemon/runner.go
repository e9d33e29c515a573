package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"
)

// Component is one part of a daemon under a Runner: a listener, a set of
// workers, a group of Kafka producers. Every field but Name is optional.
type Component struct {
	// Name names the component in the Runner's log lines and errors
	// ("http", "modules", "kafka").
	Name string
	// Serve does the component's work until ctx ends, then stops taking new
	// work (stops accepting, stops fetching) and returns nil. It returns an
	// error when it cannot go on: the daemon then stops (see Runner). A Serve
	// that returns nil before ctx ends has finished; the others go on.
	Serve func(ctx context.Context) error
	// Drain finishes the work the component took before its Serve returned:
	// answers requests in progress, flushes producers, commits offsets. ctx
	// ends when the shutdown timeout is over; Drain then gives up what is left
	// and returns an error saying what.
	Drain func(ctx context.Context) error
	// Close releases what the component holds (clients, sessions, listeners).
	// It runs once, after every Drain, also after a failure, and must not
	// block for long.
	Close func()
	// Reload reads again what the component can change while it runs (on
	// SIGHUP: kproxy's TLS files). When it fails it leaves the previous
	// settings in use and returns the reason, which the Runner logs.
	Reload func() error
}

// Runner runs a daemon's components through one lifecycle, in three stages:
//
//  1. serve: every Serve runs in a goroutine of its own until the context of
//     Run ends, one Serve returns an error (the first error stops the rest,
//     as in an errgroup), or every Serve has returned nil;
//  2. stop, one component after the other in the order they were added: its
//     Serve's context is cancelled and Run waits for its Serve to return,
//     then its Drain runs. So components added first stop first, and those
//     added later go on serving meanwhile (kproxy: stop accepting, drain the
//     requests, flush the producers, then stop the operations endpoints);
//     one deadline, the shutdown timeout from the start of this stage, bounds
//     all of it: a Serve that has not returned by then is given up with an
//     error, and the Drains after it get an ended context;
//  3. close: the Close functions, in reverse order of adding.
//
// Reload runs the Reload functions at any time. The zero Runner is not
// usable; create one with NewRunner. Its methods are safe for concurrent use.
type Runner struct {
	log     *slog.Logger
	timeout time.Duration

	mu     sync.Mutex
	comps  []Component
	closed bool
}

// NewRunner returns a Runner that logs to log (nil: nowhere) and gives the
// stop stage shutdownTimeout (shutdown_timeout).
func NewRunner(log *slog.Logger, shutdownTimeout time.Duration) *Runner {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Runner{log: log, timeout: shutdownTimeout}
}

// Add adds c after the components added before: it stops after them and is
// closed before them. Call it before Run.
func (r *Runner) Add(c Component) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.comps = append(r.comps, c)
}

func (r *Runner) components() []Component {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.comps)
}

// serving is one Serve in its goroutine.
type serving struct {
	cancel context.CancelFunc
	done   chan struct{} // closed when Serve returned
	err    error         // what Serve returned, once done is closed
}

// Run serves until ctx ends or a component fails, then stops and closes every
// component (see Runner). It returns nil after a clean stop; else the errors
// of the Serves, the Drains and the components that did not stop in time,
// joined. Call it once.
func (r *Runner) Run(ctx context.Context) error {
	comps := r.components()
	defer r.Close()
	serves := make([]*serving, len(comps))
	ended := make(chan int, len(comps))
	live := 0
	for i, c := range comps {
		if c.Serve == nil {
			continue
		}
		// Each Serve's context is cancelled at its turn in the stop stage,
		// not when ctx ends: it keeps ctx's values only.
		sctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
		s := &serving{cancel: cancel, done: make(chan struct{})}
		serves[i] = s
		live++
		go func() {
			s.err = c.Serve(sctx)
			close(s.done)
			ended <- i
		}()
	}
	r.serve(ctx, comps, serves, ended, live)
	return r.stop(ctx, comps, serves)
}

// serve waits until ctx ends, a Serve fails or every Serve has returned.
func (r *Runner) serve(ctx context.Context, comps []Component, serves []*serving, ended <-chan int, live int) {
	if live == 0 {
		<-ctx.Done()
		return
	}
	for live > 0 {
		select {
		case <-ctx.Done():
			return
		case i := <-ended:
			if err := serves[i].err; err != nil {
				r.log.Error("a component failed: stopping", "component", comps[i].Name, "err", err)
				return
			}
			live--
		}
	}
}

// stop is the stop stage: each component in turn, under one deadline.
func (r *Runner) stop(ctx context.Context, comps []Component, serves []*serving) error {
	start := time.Now()
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.timeout)
	defer cancel()
	var errs []error
	for i, c := range comps {
		r.log.Info("stopping", "component", c.Name)
		if s := serves[i]; s != nil {
			s.cancel()
			if err := s.wait(sctx); err != nil {
				errs = append(errs, fmt.Errorf("%s did not drain within shutdown_timeout %s", c.Name, r.timeout))
			} else if s.err != nil {
				errs = append(errs, s.err)
			}
		}
		if c.Drain != nil {
			if err := c.Drain(sctx); err != nil {
				errs = append(errs, err)
			}
		}
	}
	r.log.Info("drained", "took", time.Since(start).Round(time.Millisecond), "ok", len(errs) == 0)
	return errors.Join(errs...)
}

// wait waits for Serve to return; it returns ctx's error when ctx ends first.
func (s *serving) wait(ctx context.Context) error {
	select {
	case <-s.done:
		return nil
	default:
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close runs the Close functions in reverse order of adding, once: later
// calls do nothing. Run calls it before it returns; call it yourself when
// the components were added but Run is not called (a start that failed).
func (r *Runner) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	comps := slices.Clone(r.comps)
	r.mu.Unlock()
	for _, c := range slices.Backward(comps) {
		if c.Close != nil {
			c.Close()
		}
	}
}

// Reload runs every component's Reload, in order of adding, logs each
// failure at warning level and returns them joined. Daemons call it on SIGHUP
// (Main does, after reopening the log file).
func (r *Runner) Reload() error {
	var errs []error
	for _, c := range r.components() {
		if c.Reload == nil {
			continue
		}
		if err := c.Reload(); err != nil {
			r.log.Warn("reload failed: the previous settings stay in use", "component", c.Name, "err", err)
			errs = append(errs, fmt.Errorf("%s: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Workers returns a Component named name that runs each of work in a
// goroutine of its own, under a context that ends at the component's drain:
// Serve starts them and returns when its own context ends; Drain ends their
// context and waits until every one has returned, or gives up with an error
// naming name when its context ends first; Close ends their context and then
// calls closeFn (nil: nothing more). Each work returns once its context ended
// and its work is finished (pushes done, offsets committed).
func Workers(name string, closeFn func(), work ...func(ctx context.Context)) Component {
	wctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	return Component{
		Name: name,
		Serve: func(ctx context.Context) error {
			for _, w := range work {
				wg.Go(func() { w(wctx) })
			}
			<-ctx.Done()
			return nil
		},
		Drain: func(ctx context.Context) error {
			stop()
			done := make(chan struct{})
			go func() {
				wg.Wait()
				close(done)
			}()
			select {
			case <-done:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("%s did not drain within shutdown_timeout", name)
			}
		},
		Close: func() {
			stop()
			if closeFn != nil {
				closeFn()
			}
		},
	}
}

// HTTPServer returns a Component named name that serves srv on ln: Serve
// serves until its context ends (an error of srv.Serve is the component's,
// prefixed with name); Drain is srv.Shutdown, which closes ln and the idle
// connections and waits for the requests in progress until its context ends;
// Close closes srv and ln.
func HTTPServer(name string, srv *http.Server, ln net.Listener) Component {
	done := make(chan struct{})
	var serveErr error
	return Component{
		Name: name,
		Serve: func(ctx context.Context) error {
			go func() {
				defer close(done)
				if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
					serveErr = fmt.Errorf("%s: %w", name, err)
				}
			}()
			select {
			case <-done:
				return serveErr
			case <-ctx.Done():
				return nil
			}
		},
		Drain: func(ctx context.Context) error {
			err := srv.Shutdown(ctx)
			select {
			case <-done:
			case <-ctx.Done():
			}
			if err != nil {
				return fmt.Errorf("%s: drain requests: %w", name, err)
			}
			return nil
		},
		Close: func() {
			srv.Close()
			ln.Close()
		},
	}
}
