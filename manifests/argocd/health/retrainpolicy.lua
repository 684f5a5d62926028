-- Argo CD health check for modelops.dev/RetrainPolicy.
-- Embedded verbatim in argocd-cm.yaml; tested by tests/unit/test_argocd_health.py in Argo CD's own Lua code.
-- Argo CD opens only the base, table and a safe os library: no string methods here.
--   Progressing  no status yet, spec not observed yet, Reconciling=True, Ready not known yet, or
--                Ready=False NoChampion (the model's first version is still on its way)
--   Suspended    spec.suspend=true: it evaluates and reports, but never retrains
--   Degraded     Stalled=True (invalid spec), or Ready=False otherwise (e.g. Prometheus unreachable)
--   Healthy      Ready=True: watching the champion, or retraining it
local hs = {status = "Progressing", message = "Waiting for the operator"}

local function text(cond, fallback)
  if cond ~= nil and cond.message ~= nil and cond.message ~= "" then
    return cond.message
  end
  return fallback
end

if obj.metadata ~= nil and obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Being deleted"
  return hs
end
local st = obj.status
if st == nil then
  return hs
end

local generation = nil
if obj.metadata ~= nil then
  generation = obj.metadata.generation
end
if generation ~= nil and (st.observedGeneration == nil or st.observedGeneration < generation) then
  hs.message = "Waiting for the operator to observe generation " .. generation
  return hs
end

if obj.spec ~= nil and obj.spec.suspend == true then
  hs.status = "Suspended"
  hs.message = "Suspended: drift and performance are evaluated, no retrain is started"
  return hs
end

local conds = {}
if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    if c.type ~= nil then
      conds[c.type] = c
    end
  end
end
local ready, stalled, reconciling = conds["Ready"], conds["Stalled"], conds["Reconciling"]

if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = text(stalled, "stalled")
  return hs
end
if reconciling ~= nil and reconciling.status == "True" then
  hs.message = text(reconciling, "reconciling")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = text(ready, "ready")
  return hs
end
if ready ~= nil and ready.status == "False" and ready.reason == "NoChampion" then
  hs.message = text(ready, "waiting for a champion")
  return hs
end
if ready ~= nil and ready.status == "False" then
  hs.status = "Degraded"
  hs.message = text(ready, "not ready")
  return hs
end
hs.message = text(ready, "Waiting for the first evaluation")
return hs
