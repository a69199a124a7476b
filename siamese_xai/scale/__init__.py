"""Explaining at scale and sharing the results: resumable shards of a split (`shards`), the same on Apache
Beam (`beam`), the SavedModel export (`export`) and the HTML gallery of a split (`gallery`)."""
