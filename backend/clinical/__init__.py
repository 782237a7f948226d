"""The clinical core: pure functions over plain data.

Nothing here imports Flask or SQLAlchemy. Services load rows, turn them into the
dataclasses defined here and call these functions; the results are plain data too.

Modules:
  thresholds  every default with its source; team and patient overrides
  model       input and output dataclasses
  gli         GLI Global reference values (% predicted, z, LLN)
  grading     ATS/ERS 2019 session grades
  catalog     vocabularies (side-effect terms, regimen events, LAM events)
  series      per-patient daily FEV1 series from raw sessions
  trend       robust slope with an autocorrelation-honest interval; verdicts
  batch       the same estimator for many patients at once (nightly hot path)
  troughs     trough ingest flags and the draw schedule (patient time zone)
  rules       alert rules returning AlertCandidate
  evaluate    evaluate_patient: everything for one patient at one time
  replay      nightly replay over a period (validation, demos)
  simulation  seeded synthetic LAM cohort
"""
