"""One router per resource: sweeps, trials, frontier, scaling, pareto, compare, pages."""
