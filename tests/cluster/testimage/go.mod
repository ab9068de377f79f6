module kontinuum.dev/testcluster/testimage

go 1.26
