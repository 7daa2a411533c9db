package clicks

// What the start-up repair (internal/repair) and the local tables'
// reconciliation read of the values clicks stores, kept here beside the
// codecs that write them.

// NewerValue tells whether the stored value cached holds more clicks than
// logged, the value of the same key in the table's changelog: a local
// table writes back only such values to a changelog that lost records,
// never an older count over a newer one. A value that cannot be read is
// never newer, and one that cannot be read is never replaced (another
// client wrote it).
func NewerValue(cached, logged []byte) bool {
	c, err := decodeUser(cached)
	if err != nil {
		return false
	}
	l, err := decodeUser(logged)
	if err != nil {
		return false
	}
	return c.Clicks > l.Clicks
}

// ForwardedFrom reads where in the click topic the click is that a loop
// topic record forwards: its partition and offset; ok is false for a
// record clicks did not write, or one of another incarnation than
// topicID.
func ForwardedFrom(value []byte, topicID string) (partition int32, offset int64, ok bool) {
	v, _ := forwardCodec{}.Decode(value)
	f, isForward := v.(*forward)
	if !isForward || f.TopicID != topicID {
		return 0, 0, false
	}
	return f.Partition, f.Offset, true
}

// Stored is what the start-up repair reads of a stored value.
type Stored struct {
	Readable bool // a user's count: the processor counts its clicks
	// Home is the offset of the last click of the key's own partition of
	// the click topic that was counted, -1 if none; Forwarded, of each
	// other partition, of its forwarded clicks. Both only for values of
	// the incarnation asked for.
	Home      int64
	Forwarded map[int32]int64
	// Legacy marks a count that says nothing of what it counted,
	// {"Clicks":N}, as goka's own 2-clicks writes it: it holds the
	// clicks up to where the processor group committed.
	Legacy bool
}

// ReadStored reads a stored value for what was counted of the
// incarnation topicID of the click topic.
func ReadStored(value []byte, topicID string) Stored {
	u, err := decodeUser(value)
	if err != nil {
		return Stored{Home: -1}
	}
	if u.TopicID == "" && u.Offset < 0 && len(u.Forwarded) == 0 {
		return Stored{Readable: true, Home: -1, Legacy: true}
	}
	if u.TopicID != topicID {
		return Stored{Readable: true, Home: -1}
	}
	return Stored{Readable: true, Home: u.Offset, Forwarded: u.Forwarded.Map()}
}
