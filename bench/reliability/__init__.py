"""`python -m bench.reliability [--quick]` (= `make reliability`): the design's promises tried on the whole
system — crashes, faults, webhook storms, bad input, attacks — with a table of what was tried and what held."""
