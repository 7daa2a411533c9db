package broker

import (
	"fmt"
	"net"
	"sync"
)

// A broker of the embedded cluster can be stopped and started again while
// the others run, as a broker of a real cluster goes down and comes back:
// StopNode closes its listener and every connection it had accepted, so
// its clients see it gone and must find the partitions' new leaders, and
// StartNode brings it back on the same address.
//
// What this does not model, because kfake does not: kfake keeps one log
// of each partition for the whole cluster, not one per replica. The
// metadata lists as many replicas as a topic was created with, all of them
// always in sync, and min.insync.replicas is stored but never enforced. So
// a stopped broker loses nothing, a leader moves to a broker that has
// every record, and no write is ever refused for too few replicas in sync.
// That part is left to the real cluster of docker-compose.yml.

// nodes tracks, for each broker's listener, the connections it accepted,
// so that stopping the broker can close them.
type nodes struct {
	mu        sync.Mutex
	conns     map[string]map[net.Conn]struct{} // by listener address
	listeners map[string]*trackedListener      // the latest on each address
}

func newNodes() *nodes {
	return &nodes{conns: map[string]map[net.Conn]struct{}{}, listeners: map[string]*trackedListener{}}
}

// track wraps a broker's listener.
func (n *nodes) track(ln net.Listener) net.Listener {
	l := &trackedListener{Listener: ln, n: n, addr: ln.Addr().String()}
	n.mu.Lock()
	n.listeners[l.addr] = l
	n.mu.Unlock()
	return l
}

// closeConns closes the connections the listener on addr accepted, and
// any it hands out from now on: one it had taken from the kernel just
// before it was closed would otherwise stay open.
func (n *nodes) closeConns(addr string) {
	n.mu.Lock()
	if l := n.listeners[addr]; l != nil {
		l.stopped = true
	}
	conns := n.conns[addr]
	delete(n.conns, addr)
	n.mu.Unlock()
	for c := range conns {
		c.Close()
	}
}

type trackedListener struct {
	net.Listener
	n    *nodes
	addr string
	// stopped: its broker was stopped (under n.mu); what it still
	// accepts is closed at once.
	stopped bool
}

func (l *trackedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, n: l.n, addr: l.addr}
	l.n.mu.Lock()
	if l.stopped {
		l.n.mu.Unlock()
		c.Close()
		return nil, net.ErrClosed
	}
	if l.n.conns[l.addr] == nil {
		l.n.conns[l.addr] = map[net.Conn]struct{}{}
	}
	l.n.conns[l.addr][tc] = struct{}{}
	l.n.mu.Unlock()
	return tc, nil
}

type trackedConn struct {
	net.Conn
	n    *nodes
	addr string
}

func (c *trackedConn) Close() error {
	c.n.mu.Lock()
	delete(c.n.conns[c.addr], c)
	c.n.mu.Unlock()
	return c.Conn.Close()
}

// nodeID returns the kfake node ID of the broker that was started on addr:
// kfake numbers its brokers from 0 in the order of ListenAddrs at start.
func (b *Embedded) nodeID(addr string) (int32, error) {
	for i, a := range b.addrs {
		if a == addr {
			return int32(i), nil
		}
	}
	return 0, fmt.Errorf("no embedded broker listens on %s (brokers: %v)", addr, b.addrs)
}

// StopNode stops the broker on addr while the others go on. The last of
// the brokers is the cluster's controller, which kfake never moves, so it
// cannot be stopped: the admin requests of every client would fail.
func (b *Embedded) StopNode(addr string) error {
	id, err := b.nodeID(addr)
	if err != nil {
		return err
	}
	if int(id) == len(b.addrs)-1 {
		return fmt.Errorf("broker %s is the controller, which kfake does not move: stop another", addr)
	}
	if err := b.RemoveNode(id); err != nil {
		return fmt.Errorf("stop broker %s: %w", addr, err)
	}
	b.nodes.closeConns(addr)
	b.logger.Info("embedded broker stopped", "addr", addr, "node", id)
	return nil
}

// StartNode starts the broker on addr again after StopNode.
func (b *Embedded) StartNode(addr string) error {
	id, err := b.nodeID(addr)
	if err != nil {
		return err
	}
	_, port, err := SplitHostPort(addr)
	if err != nil {
		return err
	}
	if _, _, err := b.AddNode(id, port); err != nil {
		return fmt.Errorf("start broker %s again: %w", addr, err)
	}
	b.logger.Info("embedded broker started again", "addr", addr, "node", id)
	return nil
}
