// Command clicks is the goka "2-clicks" example made into a program you can
// run anywhere: an emitter sends a click for user-0 … user-9 every 100 ms to
// the topic "user-clicks", a processor counts the clicks per user in the
// group table "mini-group-table", and a view serves the counts over HTTP:
//
//	go run main.go
//	curl localhost:9095/user-3
//	{"Clicks":153}
//
// With no -brokers (and no KAFKA_BROKERS), clicks starts an embedded
// Kafka-protocol broker in-process that keeps its log under -data, so it
// needs neither Docker nor a Kafka installation. With -brokers it runs
// against a real cluster, such as the one from docker-compose.yml.
//
// The example itself is in internal/clicks; internal/app wires it up.
package main

import (
	"context"
	"os"

	"clicks/internal/app"
)

func main() {
	err := app.Run(context.Background(), os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	os.Exit(app.ExitCode(err, os.Stderr))
}
