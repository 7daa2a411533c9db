// Package web is clicks over HTTP: GET /{user} answered from the view, as
// in the original, the live page and its summary of the table, and the
// operational endpoints under /-/ (readiness, the listing, metrics,
// goka's own pages), with the server that serves them.
package web
