// Package bench compares Pyrite's Kafka runner and producer path with Watermill's Kafka
// subscriber and publisher on the same in-process broker, in the same run. It is a module of
// its own so that Watermill and its Kafka client stay out of the main module's dependencies.
package watermill
