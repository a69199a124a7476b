"""Training the networks: the builders (`models`), the losses (`losses`), the resumable loop (`loop`,
`distribute`), the three stages of a run (`stages`) and the explainer fitted to a user's own tower (`fitting`)."""
