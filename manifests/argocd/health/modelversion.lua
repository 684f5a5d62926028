-- Argo CD health check for modelops.dev/ModelVersion.
-- Embedded verbatim in argocd-cm.yaml; tested by tests/unit/test_argocd_health.py in Argo CD's own Lua code.
-- Argo CD opens only the base, table and a safe os library: no string methods here.
--   Progressing  no status yet, spec not observed yet, or training/validating/deploying/canary
--   Degraded     Failed, or Rejected by its gates/champion/canary (it will never be Ready), or Stalled
--   Suspended    deployed and waiting for a person to promote it (Promoted=False AwaitingPromotion)
--   Healthy      Ready=True: the champion (Serving), or a Superseded/Retired version kept for rollback
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

local conds = {}
if st.conditions ~= nil then
  for _, c in ipairs(st.conditions) do
    if c.type ~= nil then
      conds[c.type] = c
    end
  end
end
local ready, promoted, stalled = conds["Ready"], conds["Promoted"], conds["Stalled"]
local phase = st.phase or "Pending"

if ready ~= nil and generation ~= nil and ready.observedGeneration ~= nil and ready.observedGeneration < generation then
  hs.message = phase .. ": waiting for the operator to observe generation " .. generation
  return hs
end
if phase == "Failed" or phase == "Rejected" then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. text(ready, st.message or "")
  return hs
end
if stalled ~= nil and stalled.status == "True" then
  hs.status = "Degraded"
  hs.message = phase .. ": " .. text(stalled, "stalled")
  return hs
end
if promoted ~= nil and promoted.status == "False" and promoted.reason == "AwaitingPromotion" then
  hs.status = "Suspended"
  hs.message = phase .. ": " .. text(promoted, "waiting for manual promotion")
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = phase .. ": " .. text(ready, "ready")
  return hs
end
hs.message = phase .. ": " .. text(ready, st.message or "in progress")
return hs
