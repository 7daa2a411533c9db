// Package filler owns the mark of the records clicks writes into a
// partition of the click topic or the loop topic whose log lost its end,
// up to the offsets already read or counted, so that no offset is given to
// a second click. The start-up repair writes them and looks for them, the
// processor skips them, and the embedded broker lets only them through
// while it holds other clients' writes.
package filler

// Header is the record header that marks a filler. Fillers have no key:
// the processor looks at the headers only of records without one, as goka
// builds a map of them for every message asked.
const Header = "clicks-filler"
