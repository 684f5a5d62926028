module modelops.dev/testcluster/pause

go 1.22
