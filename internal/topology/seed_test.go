package topology

// seed declares the aggregates and groups of the seed's domain modules (WorkEffort with its
// projection and GitHub saga, Deployment with its process manager) as the mains declare them
// from the module list, then opts: the tests' realistic topology.
func seed(opts ...Option) []Option {
	return append([]Option{
		DeclareAggregates(Aggregate{Name: "WorkEffort"}, Aggregate{Name: "Deployment"}),
		WithGroups(
			Group{Name: "work-efforts", Retry: true, StorePositions: true},
			Group{Name: "github", Retry: true, StorePositions: true},
			Group{Name: "deployment", Retry: true, StorePositions: true},
		),
	}, opts...)
}
