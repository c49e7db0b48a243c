// Package lclstream is a small Go client of lclstream: connect with a
// certificate directory, create a data request, and consume its batches with
// acknowledgements and an end-of-stream check.
package lclstream

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/encoding/protojson"

	bufferv1 "lclstream/client/gen/lclstream/buffer/v1"
	datav1 "lclstream/client/gen/lclstream/data/v1"
	requestv1 "lclstream/client/gen/lclstream/request/v1"
)

const maxMessageBytes = 64 << 20

// Batches are megabytes: windows that hold several in flight (grpc-go's
// own start at 64 KiB and grow by estimation), and reads of a TLS record's
// worth or more at a time.
const (
	streamWindowBytes     = 16 << 20
	connectionWindowBytes = 32 << 20
	readBufferBytes       = 256 << 10
)

// Client talks to the data request service and the buffers it names.
type Client struct {
	creds    credentials.TransportCredentials
	conns    map[string]*grpc.ClientConn
	Requests requestv1.DataRequestServiceClient
	// BorrowBatches decodes each subscription's batches into the same memory
	// each time: a batch's arrays (Array.Data, SerializedPayload.Data) are
	// valid only until onBatch returns, so copy what you keep. Nothing is
	// allocated for them, which saves a consumer most of its decoding at large
	// batches. Strings are the caller's to keep either way.
	BorrowBatches bool
}

// FromCertDir connects to the data request service at url (https://host:port)
// with ca.crt, tls.crt and tls.key from certDir, as `lclstream enroll` writes them.
func FromCertDir(rawURL, certDir string) (*Client, error) {
	cert, err := tls.LoadX509KeyPair(filepath.Join(certDir, "tls.crt"), filepath.Join(certDir, "tls.key"))
	if err != nil {
		return nil, fmt.Errorf("reading the certificate in %s (enroll first with `lclstream enroll`): %w", certDir, err)
	}
	caPEM, err := os.ReadFile(filepath.Join(certDir, "ca.crt"))
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s/ca.crt holds no certificate", certDir)
	}
	c := &Client{creds: credentials.NewTLS(&tls.Config{Certificates: []tls.Certificate{cert}, RootCAs: roots, MinVersion: tls.VersionTLS13}), conns: map[string]*grpc.ClientConn{}}
	conn, err := c.conn(rawURL)
	if err != nil {
		return nil, err
	}
	c.Requests = requestv1.NewDataRequestServiceClient(conn)
	return c, nil
}

func (c *Client) conn(rawURL string) (*grpc.ClientConn, error) {
	u, err := url.Parse(rawURL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%q is not a URL like https://host:port", rawURL)
	}
	if conn, ok := c.conns[u.Host]; ok {
		return conn, nil
	}
	conn, err := grpc.NewClient(u.Host, grpc.WithTransportCredentials(c.creds),
		grpc.WithInitialWindowSize(streamWindowBytes), grpc.WithInitialConnWindowSize(connectionWindowBytes),
		grpc.WithReadBufferSize(readBufferBytes), experimental.WithBufferPool(buffers),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes), grpc.ForceCodecV2(newGatheringCodec())))
	if err != nil {
		return nil, err
	}
	c.conns[u.Host] = conn
	return conn, nil
}

// Close closes every connection.
func (c *Client) Close() {
	for _, conn := range c.conns {
		conn.Close()
	}
}

// CreateRequest creates a data request from its JSON form (as `lclstream get` reads it).
func (c *Client) CreateRequest(ctx context.Context, requestJSON []byte) (*requestv1.DataRequest, error) {
	var r requestv1.DataRequest
	if err := protojson.Unmarshal(requestJSON, &r); err != nil {
		return nil, fmt.Errorf("the request is not a data request: %w", err)
	}
	res, err := c.Requests.CreateDataRequest(ctx, &requestv1.CreateDataRequestRequest{DataRequest: &r})
	if err != nil {
		return nil, err
	}
	return res.DataRequest, nil
}

// Consumed is what one consumer received.
type Consumed struct {
	Batches, Events, PayloadBytes uint64
	Totals                        *datav1.StreamTotals
}

// Consume subscribes to request name as one consumer of group, calls onBatch
// for each batch, acknowledges it, and checks the end-of-stream totals. A
// sharded request is read from every shard at once (onBatch is called for one
// batch at a time; seq counts within the batch's shard, which is its
// producer rank modulo the shard count); it has ended when every shard has,
// and the shards' totals must cover each producer rank once.
func (c *Client) Consume(ctx context.Context, name, group string, onBatch func(seq uint64, b *datav1.EventBatch) error) (*Consumed, error) {
	var req *requestv1.DataRequest
	for {
		res, err := c.Requests.GetDataRequest(ctx, &requestv1.GetDataRequestRequest{Name: name})
		if err != nil {
			return nil, err
		}
		req = res.DataRequest
		if req.Stream != "" {
			break
		}
		if req.State == requestv1.DataRequest_STATE_FAILED || req.State == requestv1.DataRequest_STATE_CANCELED {
			return nil, fmt.Errorf("%s ended %s: %s", name, req.State, req.StateReason)
		}
		time.Sleep(100 * time.Millisecond)
	}
	shards := req.Shards
	if len(shards) == 0 { // a request service from before shards
		ranks := make([]uint32, max(1, int(req.Parallelism)))
		for i := range ranks {
			ranks[i] = uint32(i)
		}
		shards = []*requestv1.StreamShard{{Index: 0, BufferEndpoint: req.BufferEndpoint, Stream: req.Stream, ProducerRanks: ranks}}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := &Consumed{}
	var mu sync.Mutex // onBatch and the counts, one shard at a time
	counted := func(seq uint64, b *datav1.EventBatch) error {
		mu.Lock()
		defer mu.Unlock()
		if err := onBatch(seq, b); err != nil {
			return err
		}
		out.Batches++
		out.Events += uint64(len(b.EventIndices))
		out.PayloadBytes += payloadBytes(b)
		return nil
	}
	for _, g := range req.ConsumerGroups {
		if g.Name == group && g.ShardAssignment == bufferv1.ShardAssignment_SHARD_ASSIGNMENT_ASSIGNED && len(shards) > 1 {
			return out, c.consumeAssigned(ctx, name, group, shards, out, counted)
		}
	}
	totals := make([]*datav1.StreamTotals, len(shards))
	errs := make(chan error, len(shards))
	for i, shard := range shards {
		go func() {
			t, err := c.consumeShard(ctx, shard, len(shards) > 1, false, group, counted)
			totals[i] = t
			if err != nil {
				cancel() // one shard failing ends the others
			}
			errs <- err
		}()
	}
	var first error
	for range shards {
		if err := <-errs; err != nil && first == nil {
			first = err
		}
	}
	if first != nil {
		return out, first
	}
	if len(shards) == 1 {
		out.Totals = totals[0]
		return out, nil
	}
	out.Totals = sumTotals(totals)
	for i, p := range out.Totals.ProducerTotals {
		if p.ProducerRank != uint32(i) || len(out.Totals.ProducerTotals) != max(1, int(req.Parallelism)) {
			return out, fmt.Errorf("the shards' totals do not cover each of the %d producer ranks once", req.Parallelism)
		}
	}
	return out, nil
}

// sumTotals adds shards' totals up, producer ranks in order.
func sumTotals(shards []*datav1.StreamTotals) *datav1.StreamTotals {
	sum := &datav1.StreamTotals{}
	for _, t := range shards {
		sum.BatchCount += t.BatchCount
		sum.EventCount += t.EventCount
		sum.PayloadBytes += t.PayloadBytes
		sum.ProducerTotals = append(sum.ProducerTotals, t.ProducerTotals...)
	}
	sort.Slice(sum.ProducerTotals, func(a, b int) bool { return sum.ProducerTotals[a].ProducerRank < sum.ProducerTotals[b].ProducerRank })
	return sum
}

// consumeAssigned reads, in assigned mode, the shards the request service
// gives this consumer, letting go of a shard at a rebalance (each batch is
// acknowledged as it is handled, so nothing done is read again), until the
// service says every shard is complete. Totals are those of the shards whose
// end this consumer received.
func (c *Client) consumeAssigned(ctx context.Context, name, group string, shards []*requestv1.StreamShard, out *Consumed, counted func(uint64, *datav1.EventBatch) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	watch, err := c.Requests.WatchShardAssignment(ctx, &requestv1.WatchShardAssignmentRequest{Name: name, ConsumerGroup: group})
	if err != nil {
		return err
	}
	type reader struct {
		stop context.CancelFunc
		done chan struct{}
	}
	readers := map[uint32]*reader{}
	var mu sync.Mutex
	var ended []*datav1.StreamTotals
	for {
		a, err := watch.Recv()
		if err != nil {
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				return cause
			}
			return err
		}
		for index, r := range readers {
			if !slices.Contains(a.Shards, index) {
				r.stop()
				<-r.done
				delete(readers, index)
			}
		}
		for _, index := range a.Shards {
			if readers[index] != nil {
				continue
			}
			shardCtx, stop := context.WithCancel(ctx)
			r := &reader{stop: stop, done: make(chan struct{})}
			readers[index] = r
			go func() {
				defer close(r.done)
				t, err := c.consumeShard(shardCtx, shards[index], true, true, group, counted)
				if err != nil && shardCtx.Err() == nil {
					cancel(err) // a shard that fails ends the consumer
					return
				}
				if t != nil {
					mu.Lock()
					ended = append(ended, t)
					mu.Unlock()
				}
			}()
		}
		if a.Complete {
			for _, r := range readers {
				<-r.done
			}
			if cause := context.Cause(ctx); cause != nil {
				return cause
			}
			out.Totals = sumTotals(ended)
			return nil
		}
	}
}

// ConsumeStream reads one buffer stream (streams/ID at bufferURL, as a data
// request's shard names them) to its end of stream in a consumer group,
// acknowledging each batch, and checks its totals against what arrived.
func (c *Client) ConsumeStream(ctx context.Context, bufferURL, stream, group string, onBatch func(seq uint64, b *datav1.EventBatch) error) (*datav1.StreamTotals, error) {
	return c.consumeShard(ctx, &requestv1.StreamShard{BufferEndpoint: bufferURL, Stream: stream}, false, false, group, onBatch)
}

// consumeShard reads one shard to its end of stream, acknowledging each
// batch, and checks its totals against what arrived from it (partial: only
// that no more arrived, as another consumer may have read part of it).
func (c *Client) consumeShard(ctx context.Context, shard *requestv1.StreamShard, sharded, partial bool, group string, onBatch func(seq uint64, b *datav1.EventBatch) error) (*datav1.StreamTotals, error) {
	what := "the stream"
	if sharded {
		what = fmt.Sprintf("shard %d (%s)", shard.Index, shard.Stream)
	}
	conn, err := c.conn(shard.BufferEndpoint)
	if err != nil {
		return nil, err
	}
	buffer := bufferv1.NewBufferServiceClient(conn)
	if shard.BufferRoute != "" { // through the front door: the route to this shard's buffer, on every call
		ctx = metadata.AppendToOutgoingContext(ctx, "lclstream-buffer", shard.BufferRoute)
	}
	var borrowing []grpc.CallOption
	if c.BorrowBatches {
		borrowing = append(borrowing, grpc.ForceCodecV2(&borrowingCodec{gatheringCodec: newGatheringCodec()}))
	}
	stream, err := buffer.Subscribe(ctx, &bufferv1.SubscribeRequest{Stream: shard.Stream, ConsumerGroup: group}, borrowing...)
	if err != nil {
		return nil, err
	}
	var batches, events uint64
	var acks *acker // from the started message, which comes first
	defer func() {
		if acks != nil {
			acks.close()
		}
	}()
	for {
		res, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("%s ended without its end-of-stream message", what)
		}
		if err != nil {
			return nil, err
		}
		switch kind := res.Kind.(type) {
		case *bufferv1.SubscribeResponse_Started:
			if acks == nil {
				acks = newAcker(ctx, buffer, shard.Stream, group, kind.Started.ConsumerId, windowOf(kind.Started))
			}
		case *bufferv1.SubscribeResponse_Batch:
			if acks == nil {
				return nil, fmt.Errorf("%s sent a batch before its started message", what)
			}
			if err := onBatch(res.Seq, kind.Batch); err != nil {
				return nil, err
			}
			batches++
			events += uint64(len(kind.Batch.EventIndices))
			if err := acks.add(res.Seq, payloadBytes(kind.Batch)); err != nil {
				return nil, err
			}
		case *bufferv1.SubscribeResponse_EndOfStream:
			t := kind.EndOfStream
			if batches > t.BatchCount || (!partial && (t.BatchCount != batches || t.EventCount != events)) {
				return t, fmt.Errorf("%s ended with %d batches and %d events, but %d and %d arrived", what, t.BatchCount, t.EventCount, batches, events)
			}
			return t, nil
		}
	}
}

// window is what a consumer may hold unacknowledged: batches, and bytes of
// them (0: no byte limit).
type window struct {
	batches int
	bytes   uint64
}

// windowOf is the window a subscription's started message gives; a buffer
// from before byte windows gives none, and sent 16 batches by default.
func windowOf(s *bufferv1.SubscribeStarted) window {
	if s.MaxInFlight == 0 {
		return window{batches: 16}
	}
	return window{batches: int(s.MaxInFlight), bytes: s.MaxInFlightBytes}
}

// acked is one batch to acknowledge: its seq, and the bytes of its payload.
type acked struct {
	seq   uint64
	bytes uint64
}

// acker acknowledges a subscription's seqs beside it, without holding up the
// reading: in groups of half the window, in batches or in bytes (so the
// buffer never waits on an Ack with nothing in flight), or 20 ms after the
// first of a group, one Ack call at a time. A failed Ack ends the
// subscription (what was not acknowledged is delivered again).
type acker struct {
	seqs chan acked
	err  chan error
	once sync.Once
}

func newAcker(ctx context.Context, buffer bufferv1.BufferServiceClient, stream, group, consumerID string, w window) *acker {
	a := &acker{seqs: make(chan acked, 64), err: make(chan error, 1)}
	groupSize := max(1, w.batches/2)
	groupBytes := uint64(math.MaxUint64)
	if w.bytes > 0 {
		groupBytes = w.bytes / 2
	}
	go func() {
		var pending []uint64
		var pendingBytes uint64
		timer := time.NewTimer(time.Hour)
		timer.Stop()
		send := func() bool {
			if len(pending) == 0 {
				return true
			}
			_, err := buffer.Ack(ctx, &bufferv1.AckRequest{Stream: stream, ConsumerGroup: group, ConsumerId: consumerID, Seqs: pending})
			pending, pendingBytes = nil, 0
			if err != nil {
				a.err <- err
				return false
			}
			return true
		}
		for {
			select {
			case b, open := <-a.seqs:
				if !open {
					return
				}
				pending = append(pending, b.seq)
				pendingBytes += b.bytes
				if len(pending) >= groupSize || pendingBytes >= groupBytes {
					timer.Stop()
					if !send() {
						return
					}
				} else if len(pending) == 1 {
					timer.Reset(20 * time.Millisecond)
				}
			case <-timer.C:
				if !send() {
					return
				}
			}
		}
	}()
	return a
}

// add queues seq, a batch of bytes, for acknowledgement; it reports an Ack that failed earlier.
func (a *acker) add(seq, bytes uint64) error {
	select {
	case err := <-a.err:
		return err
	case a.seqs <- acked{seq, bytes}:
		return nil
	}
}

func (a *acker) close() { a.once.Do(func() { close(a.seqs) }) }

func payloadBytes(b *datav1.EventBatch) uint64 {
	if s := b.GetSerialized(); s != nil {
		return uint64(len(s.Data))
	}
	n := 0
	for _, a := range b.GetColumns().GetFields() {
		n += len(a.Data)
	}
	return uint64(n)
}
