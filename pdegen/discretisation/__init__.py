"""What the families are built from: random input fields (`fields`), finite-difference
stencils on the node grid (`operators`), Q1 finite elements (`fem`) and the time-stepping
declaration every time-dependent family makes (`timestepping`)."""
