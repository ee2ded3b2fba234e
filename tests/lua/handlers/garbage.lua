-- Returns nonsense from its callbacks.
return {
  read = function() return 'what', 42 end,
  write = function() return {} end,
}
