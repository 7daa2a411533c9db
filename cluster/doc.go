// Package cluster has no code: it is the directory of the files that run
// Apache Kafka for clicks (pom.xml, kafka.sh, kafka.env), and its tests
// check them against docker-compose.yml, the Makefile's cluster targets
// and the Kafka workflow, so that the three ways to run a cluster agree.
package cluster
